import ArgumentParser
import AsyncHTTPClient
import Foundation
import LegationLoad
import LegationTestSupport
import Server
import Shared

#if canImport(Glibc)
    import Glibc
    import RedisStore
    import LocalProcesses
#endif

/// `legation-bench fanout` (scenario P1): N simulated sidecars, each on its own HTTP/2 connection, hold
/// ADS streams to an xds-server; one ClusterLoadAssignment changes per update. Measures the initial sync
/// of all N, the propagation latency of each update to each stream, the server's CPU and RSS, and bytes
/// on the wire. By default it starts redis-server and `legation xds-server` (a separate process, so its
/// CPU and memory are its own) and publishes updates into Redis as an ingestor would; with `--xds` it
/// loads any ADS server and triggers updates through `--hook`.
struct FanoutBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout", abstract: "xDS fan-out: N streams, one assignment changing per update.")

    @Option(help: "Simulated sidecars (streams), each on its own connection.") var streams = 1000
    @Option(help: "Clusters (services), each with one port.") var clusters = 100
    @Option(help: "Endpoints per cluster.") var endpoints = 20
    @Option(help: "Updates (one assignment changes in each).") var updates = 20
    @Option(help: "Pause between updates, ms.") var intervalMs = 100
    @Flag(help: "Incremental xDS (DeltaAggregatedResources) instead of state of the world.") var delta = false
    @Option(help: "The xds-server's debounce quiet period, ms.") var debounceQuietMs = 10
    @Option(help: "The xds-server's debounce maximum, ms.") var debounceMaxMs = 100
    @Option(help: "Each sidecar refuses (NACKs) every n-th EDS response; 0 never.") var nackEvery = 0
    @Option(help: "The legation binary (default: next to this one).") var legation: String?
    @Option(help: "Load this ADS server (host:port) instead of starting one.") var xds: String?
    @Option(help: "With --xds: URL called to make each update ({k}: the cluster to change, {v}: its new version).") var hook: String?
    @Option(help: "Give up after this many seconds.") var timeout = 180
    @Option(help: "Write results as JSON here.") var output: String?
    @Option(
        help: "The sidecars' gRPC client: nio (cheap, the default) or grpc-swift (grpc-swift-2's client, as the harness had until 2026-12)."
    )
    var client = SimulatedSidecar.Client.nio

    func validate() throws {
        guard (1...20_000).contains(streams), (1...10_000).contains(clusters), (1...1000).contains(endpoints),
            (1...10_000).contains(updates),
            (0...60_000).contains(intervalMs), (1...3600).contains(timeout)
        else { throw ValidationError("a value is out of bounds (streams ≤ 20000, clusters ≤ 10000, endpoints ≤ 1000, updates ≤ 10000)") }
        if xds != nil, hook == nil { throw ValidationError("--xds needs --hook to trigger updates") }
    }

    /// One run's figures (JSON-ready), every delivery latency in ms, and the one-line summary.
    struct Result {
        var figures: [String: Any]
        var latencies: [Double]
        var line: String
    }

    func run() async throws {
        let result = try await measure()
        print(result.line)
        if let output {
            try JSONSerialization.data(withJSONObject: result.figures, options: [.prettyPrinted, .sortedKeys]).write(
                to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        }
    }

    func measure() async throws -> Result {
        let deadline = ContinuousClock.now + .seconds(timeout)
        var server: ChildProcess?
        var redis: RedisServer?
        var writer: (store: RedisEndpointStore, lease: Lease)?
        let source = try SourceCluster("bench")
        let host: String
        let port: Int
        if let xds {
            guard let (h, p) = splitHostAndPort(xds) else { throw ValidationError("--xds is not host:port") }
            (host, port) = (h, p)
        } else {
            let started = try await RedisServer()
            redis = started
            let store = RedisEndpointStore(try started.configuration(), logger: .quiet())
            let lease = try await store.acquireLease(source: source, holder: "bench", ttl: .seconds(600))!
            try await store.heartbeat(lease: lease, ttl: .seconds(600))
            let result = try await store.write(
                (0..<clusters).map { .put(try endpointSet(source, service: $0, generation: 0)) }, lease: lease)
            try await store.markSynced(generation: result.generation, serviceCount: clusters, lease: lease)
            writer = (store, lease)
            host = "127.0.0.1"
            port = try freeLoopbackPort()
            let admin = try freeLoopbackPort()
            let binary =
                legation
                ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("legation").path
            server = try ChildProcess(
                binary,
                [
                    "xds-server", "--redis-url", started.url(), "--source", "bench", "--listen", "127.0.0.1:\(port)",
                    "--admin-address", "127.0.0.1:\(admin)", "--debounce-quiet", String(debounceQuietMs), "--debounce-max",
                    String(debounceMaxMs),
                    "--max-streams", String(streams + 100), "--log-level", "error"
                ])
            guard try await waitReady(admin: admin, until: deadline) else { throw ValidationError("the xds-server did not become ready") }
        }
        defer {
            server?.kill()
            redis?.kill()
        }
        let rssBefore = server.map { Self.rssKilobytes($0.pid) } ?? 0

        // Initial sync of all N.
        let sidecars = (0..<streams).map { SimulatedSidecar(id: $0, delta: delta, nackEvery: nackEvery) }
        // What the sync costs each side: on this machine they share the cores, so the wall time is both.
        let syncServerCPUBefore = server.map { Self.cpuSeconds($0.pid) } ?? 0
        let syncHarnessCPUBefore = Self.cpuSeconds(getpid())
        let started = ContinuousClock.now
        let tasks = sidecars.map { sidecar in
            // Like Envoy, a sidecar whose connection fails (a full accept queue under thousands of connects) tries again.
            Task { await sidecar.run(servers: [(host, port)], zone: "zone-\(sidecar.id % 3)", reconnect: true, client: client) }
        }
        defer { tasks.forEach { $0.cancel() } }
        while sidecars.contains(where: { $0.syncedClusters < clusters }) {
            guard ContinuousClock.now < deadline else {
                let errors = sidecars.compactMap { $0.state.withLock { $0.error } }.prefix(3)
                throw ValidationError(
                    "initial sync incomplete: \(sidecars.filter { $0.syncedClusters >= clusters }.count)/\(streams) synced; errors: \(Array(errors))"
                )
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let syncTimes = sidecars.map { sidecar in sidecar.state.withLock { $0.assignments.values.max()! } - started }
        let initialSync = syncTimes.max()!
        let syncServerCPU = (server.map { Self.cpuSeconds($0.pid) } ?? 0) - syncServerCPUBefore
        let syncHarnessCPU = Self.cpuSeconds(getpid()) - syncHarnessCPUBefore
        try await Task.sleep(for: .milliseconds(200))
        let rssAfter = server.map { Self.rssKilobytes($0.pid) } ?? 0
        let bytesBefore = sidecars.reduce(0) { total, sidecar in total + sidecar.state.withLock { $0.bytes } }
        let cpuBefore = server.map { Self.cpuSeconds($0.pid) } ?? 0
        // The harness's own CPU (its N clients), beside the server's: both share the machine's cores.
        let harnessCPUBefore = Self.cpuSeconds(getpid())
        let commandsBefore = redis == nil ? 0 : await Self.redisCommandsProcessed(port: redis!.port)

        // Updates.
        var latencies: [Duration] = []
        for k in 0..<updates {
            let service = k % clusters
            // The service's round: its moving endpoint takes the next of 100 addresses, never the one it
            // holds (a repeat would change nothing, and no stream would hear of it).
            let generation = k / clusters + 1
            let name = "bench/svc-\(service):http"
            let changedAt = ContinuousClock.now
            if let writer {
                _ = try await writer.store.write(
                    [.put(try endpointSet(source, service: service, generation: generation))], lease: writer.lease)
            } else if let hook {
                let url = hook.replacingOccurrences(of: "{k}", with: String(service)).replacingOccurrences(
                    of: "{v}", with: String(generation))
                _ = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            }
            var pending = Set(0..<streams)
            while !pending.isEmpty {
                for index in pending.sorted() {
                    // A dictionary lookup, not a scan of every arrival: this runs for every pending sidecar each millisecond.
                    let arrival = sidecars[index].state.withLock { state in
                        (writer == nil ? state.latestAnyArrival : state.latestArrival[name]).flatMap { $0 >= changedAt ? $0 : nil }
                    }
                    if let arrival {
                        latencies.append(arrival - changedAt)
                        pending.remove(index)
                    }
                }
                guard ContinuousClock.now < deadline else {
                    throw ValidationError("update \(k) reached \(streams - pending.count)/\(streams) streams before the timeout")
                }
                if !pending.isEmpty { try await Task.sleep(for: .milliseconds(1)) }
            }
            try await Task.sleep(for: .milliseconds(intervalMs))
        }
        let cpuAfter = server.map { Self.cpuSeconds($0.pid) } ?? 0
        let harnessCPUPerUpdate = (Self.cpuSeconds(getpid()) - harnessCPUBefore) / Double(updates)
        let commandsAfter = redis == nil ? 0 : await Self.redisCommandsProcessed(port: redis!.port)
        let bytesAfter = sidecars.reduce(0) { total, sidecar in total + sidecar.state.withLock { $0.bytes } }

        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))].milliseconds }
        let cpuPerUpdate = (cpuAfter - cpuBefore) / Double(updates)
        var results: [String: Any] = [
            "scenario": "P1 fan-out", "mode": delta ? "delta" : "sotw", "streams": streams, "clusters": clusters, "endpoints": endpoints,
            "updates": updates, "initial_sync_ms": initialSync.milliseconds,
            "update_p50_ms": percentile(0.5), "update_p90_ms": percentile(0.9), "update_p99_ms": percentile(0.99),
            "update_max_ms": sorted.last!.milliseconds, "debounce_quiet_ms": debounceQuietMs, "debounce_max_ms": debounceMaxMs,
            "bytes_per_update": (bytesAfter - bytesBefore) / updates,
            "command": CommandLine.arguments.joined(separator: " "), "machine": "\(ProcessInfo.processInfo.activeProcessorCount) cores",
            "commit": Self.commit(), "client": client.rawValue
        ]
        results["harness_cpu_us_per_stream_update"] = harnessCPUPerUpdate * 1_000_000 / Double(streams)
        results["initial_sync_harness_cpu_ms"] = syncHarnessCPU * 1000
        if server != nil { results["initial_sync_server_cpu_ms"] = syncServerCPU * 1000 }
        results["nacks_sent"] = sidecars.reduce(0) { $0 + $1.state.withLock { $0.nacks } }
        results["stream_errors"] = sidecars.filter { $0.state.withLock { $0.error != nil } }.count
        if redis != nil { results["redis_commands_per_update"] = Double(commandsAfter - commandsBefore) / Double(updates) }
        if server != nil {
            results["server_cpu_ms_per_update"] = cpuPerUpdate * 1000
            results["server_cpu_us_per_stream_update"] = cpuPerUpdate * 1_000_000 / Double(streams)
            results["server_rss_mb"] = Double(rssAfter) / 1024
            results["server_rss_kb_per_stream"] = Double(rssAfter - rssBefore) / Double(streams)
        }
        let line =
            String(
                format:
                    "%@ N=%d: initial sync %.0f ms (CPU: %@harness %.0f ms); update p50 %.1f / p90 %.1f / p99 %.1f / max %.1f ms (debounce %d/%d ms); %d bytes/update%@",
                delta ? "delta" : "sotw", streams, initialSync.milliseconds,
                server == nil ? "" : String(format: "server %.0f ms, ", syncServerCPU * 1000), syncHarnessCPU * 1000,
                percentile(0.5), percentile(0.9), percentile(0.99),
                sorted.last!.milliseconds,
                debounceQuietMs, debounceMaxMs, (bytesAfter - bytesBefore) / updates,
                server == nil
                    ? ""
                    : String(
                        format: "; server CPU %.2f ms/update (%.2f µs per stream-update), RSS %.0f MB (%.1f KB/stream)",
                        cpuPerUpdate * 1000, cpuPerUpdate * 1_000_000 / Double(streams), Double(rssAfter) / 1024,
                        Double(rssAfter - rssBefore) / Double(streams)))
            + String(format: "; harness CPU %.2f µs per stream-update", harnessCPUPerUpdate * 1_000_000 / Double(streams))
        server?.kill(SIGTERM)
        _ = try? await server?.wait(timeout: .seconds(5))
        await writer?.store.close()
        return Result(figures: results, latencies: sorted.map(\.milliseconds), line: line)
    }

    /// Redis's `total_commands_processed` (INFO stats), read with redis-cli; 0 when unavailable.
    static func redisCommandsProcessed(port: Int) async -> Int {
        guard let directory = try? TemporaryDirectory(prefix: "legation-bench-info") else { return 0 }
        defer { directory.remove() }
        let file = directory.file("info")
        guard let process = try? ChildProcess("/usr/bin/redis-cli", ["-p", String(port), "INFO", "stats"], outputFile: file),
            (try? await process.wait(timeout: .seconds(5))) == 0,
            let text = try? String(contentsOfFile: file, encoding: .utf8),
            let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("total_commands_processed:") })
        else { return 0 }
        return Int(line.split(separator: ":").last ?? "") ?? 0
    }

    /// Service `service`'s endpoint set; `generation` moves one endpoint, so each update changes one assignment.
    func endpointSet(_ source: SourceCluster, service: Int, generation: Int) throws -> EndpointSet {
        let list = try (0..<endpoints).map { e in
            // Each service owns 1,100 addresses; endpoint 0 moves among the last 100 with the generation.
            let index = service * 1100 + (e == 0 ? 1000 + generation % 100 : e)
            return try Endpoint(
                address: "10.\(index >> 16 & 255).\(index >> 8 & 255).\(index & 255)", targetPorts: [8080], zone: "zone-\(e % 3)",
                node: "node-\(e % 10)", targetPod: "bench/svc-\(service)-\(e)")
        }
        return try EndpointSet(
            source: source, service: ServiceKey(namespace: "bench", name: "svc-\(service)"), ports: [ServicePort(name: "http", port: 80)],
            endpoints: list)
    }

    func waitReady(admin: Int, until deadline: ContinuousClock.Instant) async throws -> Bool {
        while ContinuousClock.now < deadline {
            if let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(admin)/readyz"), timeout: .seconds(1)),
                response.status == .ok
            {
                return true
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    static func rssKilobytes(_ pid: pid_t) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }

    static func cpuSeconds(_ pid: pid_t) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func commit() -> String {
        let head = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".git/HEAD")
        guard let text = try? String(contentsOf: head, encoding: .utf8) else { return "unknown" }
        if text.hasPrefix("ref: ") {
            let name = text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)
            let git = head.deletingLastPathComponent()
            if let loose = try? String(contentsOf: git.appendingPathComponent(name), encoding: .utf8) {
                return loose.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            // A packed ref: "<sha> <name>" lines in packed-refs.
            let packed = (try? String(contentsOf: git.appendingPathComponent("packed-refs"), encoding: .utf8)) ?? ""
            return packed.split(separator: "\n").first { $0.hasSuffix(" \(name)") }.map { String($0.prefix(40)) } ?? "unknown"
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

extension Duration {
    var milliseconds: Double { Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15 }
}

extension SimulatedSidecar.Client: ExpressibleByArgument {}
