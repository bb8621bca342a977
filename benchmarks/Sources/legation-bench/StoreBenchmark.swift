import ArgumentParser
import Foundation
import LegationTestSupport
import RedisStore
import Shared

/// `legation-bench store`: publish S services × E endpoints through the Redis store the way an ingestor
/// does (batched writes under a lease, then the canary), then read everything back the way an
/// xds-server does (one atomic snapshot, decoded and validated into a SourceFeed).
struct StoreBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Publish and read back a large mesh through Redis.")

    @Option(help: "Services to publish.") var services = 1000
    @Option(help: "Endpoints per service.") var endpoints = 50
    @Option(help: "Source clusters the services are spread over.") var sources = 1
    @Option(help: "Writes per store call (the ingestor's batch limit).") var batch = 256
    @Option(help: "Measured rounds (each on a fresh Redis).") var rounds = 5
    @Option(help: "Redis to use instead of starting a redis-server on a free loopback port.") var redisURL: String?
    @Option(help: "Write results as JSON here.") var output: String?

    func validate() throws {
        guard (1...100_000).contains(services), (1...10_000).contains(endpoints), (1...64).contains(sources),
            (1...10_000).contains(batch), (1...50).contains(rounds)
        else { throw ValidationError("out of bounds: services ≤ 100000, endpoints ≤ 10000, sources ≤ 64, batch ≤ 10000, rounds ≤ 50") }
    }

    struct Round: Codable {
        var publishSeconds: Double
        var readBackSeconds: Double
        /// Of the read back: the snapshot from Redis (round trip and RESP parsing) alone.
        var snapshotSeconds: Double
        var recordBytes: Int
    }

    func run() async throws {
        let clusters = try (0..<sources).map { try SourceCluster("bench-\($0)") }
        let sets = try makeSets(clusters)
        let recordBytes = try sets.reduce(0) {
            $0 + (try $1.record(epoch: 1, publishedAtUnixMilliseconds: 0).serializedBytes() as [UInt8]).count
        }
        print(
            "store benchmark: \(services) services × \(endpoints) endpoints over \(sources) source(s), \(recordBytes / 1024) KiB of records, batches of \(batch)"
        )

        var results: [Round] = []
        for round in 0..<rounds {
            let server: RedisServer? = redisURL == nil ? try await RedisServer() : nil
            let configuration = try RedisConfiguration(url: redisURL ?? server!.url())
            let store = RedisEndpointStore(configuration)
            if redisURL != nil { _ = try await store.client.send(["FLUSHDB"]) }

            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for cluster in clusters {
                    let mine = sets.filter { $0.source == cluster }
                    group.addTask {
                        let lease = try await store.acquireLease(source: cluster, holder: "bench", ttl: .seconds(60))!
                        var generation = ""
                        for start in stride(from: 0, to: mine.count, by: batch) {
                            let writes = mine[start..<min(start + batch, mine.count)].map(StoreWrite.put)
                            generation = try await store.write(Array(writes), lease: lease).generation
                        }
                        try await store.markSynced(generation: generation, serviceCount: mine.count, lease: lease)
                    }
                }
                try await group.waitForAll()
            }
            let published = ContinuousClock.now - started

            let readStarted = ContinuousClock.now
            let (found, snapshotSeconds) = try await withThrowingTaskGroup(of: (Int, Double).self) { group in
                for cluster in clusters {
                    group.addTask {
                        var feed = SourceFeed(source: cluster)
                        let began = ContinuousClock.now
                        let snapshot = try await store.snapshot(of: cluster)
                        let snapshotSeconds = (ContinuousClock.now - began).seconds
                        let outcome = feed.apply(snapshot)
                        guard outcome.rejections.isEmpty, feed.isSynced else {
                            throw ValidationError(
                                "read back failed: \(outcome.rejections.first.map(String.init(describing:)) ?? "not synced")")
                        }
                        return (feed.services.values.reduce(0) { $0 + $1.endpoints.count }, snapshotSeconds)
                    }
                }
                return try await group.reduce((0, 0.0)) { ($0.0 + $1.0, max($0.1, $1.1)) }
            }
            let readBack = ContinuousClock.now - readStarted
            guard found == services * endpoints else {
                throw ValidationError("read back \(found) endpoints, expected \(services * endpoints)")
            }
            await store.close()
            let result = Round(
                publishSeconds: published.seconds, readBackSeconds: readBack.seconds,
                snapshotSeconds: snapshotSeconds, recordBytes: recordBytes)
            results.append(result)
            print(
                String(
                    format: "  round %d: publish %.1f ms, read back %.1f ms (snapshot from Redis %.1f ms, decode + validate %.1f ms)",
                    round + 1, result.publishSeconds * 1000, result.readBackSeconds * 1000, result.snapshotSeconds * 1000,
                    (result.readBackSeconds - result.snapshotSeconds) * 1000))
        }
        let publish = results.map(\.publishSeconds).sorted()
        let read = results.map(\.readBackSeconds).sorted()
        let summary = String(
            format: "median publish %.1f ms (%.0f endpoints/s), median read back %.1f ms (%.0f endpoints/s)",
            publish[publish.count / 2] * 1000, Double(services * endpoints) / publish[publish.count / 2],
            read[read.count / 2] * 1000, Double(services * endpoints) / read[read.count / 2])
        print(summary)
        if let output {
            let report: [String: String] = [
                "scenario": "store", "services": "\(services)", "endpoints": "\(endpoints)", "sources": "\(sources)",
                "batch": "\(batch)", "summary": summary, "machine": machine(), "command": CommandLine.arguments.joined(separator: " "),
                "rounds": String(decoding: try JSONEncoder().encode(results), as: UTF8.self)
            ]
            try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys]).write(
                to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        }
    }

    private func makeSets(_ clusters: [SourceCluster]) throws -> [EndpointSet] {
        let ports = [
            try ServicePort(name: "http", port: 80, appProtocol: "http"), try ServicePort(name: "grpc", port: 9090, appProtocol: "grpc")
        ]
        return try (0..<services).map { index in
            let source = clusters[index % clusters.count]
            let members = try (0..<endpoints).map { e in
                try Endpoint(
                    address: "10.\(index / 250 % 250).\(index % 250).\(e % 250 + 1)", targetPorts: [8080, 9090],
                    zone: "zone-\(e % 3)", node: "node-\(e % 20)", hostname: "", targetPod: "bench/svc-\(index)-\(e)",
                    conditions: .ready)
            }
            return try EndpointSet(
                source: source, service: try ServiceKey(namespace: "bench", name: "svc-\(index)"), ports: ports, endpoints: members)
        }
    }

    private func machine() -> String {
        let cpu =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last?
            .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu)"
    }
}
