import ArgumentParser
import Foundation
import Ingestor
import LegationTestSupport
import Shared
import Synchronization

#if canImport(Glibc)
    import Glibc
    import RedisStore
#endif

/// `legation-bench ingest`: the ingestor's hot paths against a real redis-server on loopback.
///  1. list: a fake API server holding S slices; time from starting the Kubernetes source to the canary;
///  2. events: watch events (100-endpoint EndpointSlices) framed, decoded, aggregated and published;
///     events/s of wall time and of process CPU time;
///  3. paced: events at a set rate, each timed from its bytes arriving to Redis acknowledging it.
struct IngestBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ingest", abstract: "Ingestor throughput and initial-list time.")

    @Option(help: "Watch events in the events run (bounded).") var events = 10_000
    @Option(help: "Endpoints per EndpointSlice.") var endpointsPerSlice = 100
    @Option(help: "EndpointSlices in the list run.") var slices = 500
    @Option(help: "Slices per service.") var slicesPerService = 5
    @Option(help: "Write results as JSON here.") var output: String?
    @Flag(help: "Run only the events run (for profiling it).") var eventsOnly = false
    @Flag(help: "Run only the paced run.") var pacedOnly = false
    @Option(help: "Events per second in the paced run (event received → Redis acknowledged latency).") var pacedRate = 1000
    @Option(help: "Events in the paced run (bounded; 0 skips it).") var pacedEvents = 5000

    func validate() throws {
        guard !(eventsOnly && pacedOnly), (1...200_000).contains(events), (0...100_000).contains(pacedEvents),
            (1...20_000).contains(pacedRate), (1...1000).contains(endpointsPerSlice), (1...20_000).contains(slices),
            (1...100).contains(slicesPerService)
        else { throw ValidationError("out of bounds") }
    }

    func run() async throws {
        var results: [String: String] = [
            "machine": ProcessInfo.processInfo.activeProcessorCount.description + " cores",
            "command": CommandLine.arguments.joined(separator: " ")
        ]
        // Each run on its own redis-server, the list first (what a starting ingestor does, in a fresh
        // process): run after the others, the list measured 30–70 % slower, with their 750 MB of change
        // streams (10,000 entries of ~50 KB per source) sitting in the same Redis.
        if !eventsOnly, !pacedOnly {
            let redis = try await RedisServer()
            results.merge(try await listRun(redis)) { $1 }
            redis.kill()
        }
        if !pacedOnly {
            let redis = try await RedisServer()
            results.merge(try await eventsRun(redis)) { $1 }
            redis.kill()
        }
        if pacedEvents > 0, !eventsOnly {
            let redis = try await RedisServer()
            results.merge(try await pacedRun(redis)) { $1 }
            redis.kill()
        }
        if let output {
            try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]).write(
                to: URL(fileURLWithPath: output))
            print("wrote \(output)")
        }
    }

    /// One slice's JSON as the API server sends it. `notReady`: the one endpoint that is terminating
    /// (a rolling restart moving through the slice: each event changes two endpoints).
    func sliceJSON(service: Int, slice: Int, version: Int, notReady: Int) -> String {
        let endpoints = (0..<endpointsPerSlice).map { e in
            let ready = e != notReady % endpointsPerSlice
            return
                #"{"addresses":["10.\#(service % 250).\#(slice * 50 + e / 250 % 50).\#(e % 250 + 1)"],"conditions":{"ready":\#(ready),"serving":true,"terminating":\#(!ready)},"nodeName":"node-\#(e % 30)","zone":"zone-\#(e % 3)","targetRef":{"kind":"Pod","namespace":"bench","name":"svc-\#(service)-\#(slice)-\#(e)","uid":"00000000-0000-0000-0000-000000000000"}}"#
        }.joined(separator: ",")
        return
            #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"svc-\#(service)-\#(slice)","namespace":"bench","resourceVersion":"\#(version)","labels":{"kubernetes.io/service-name":"svc-\#(service)","endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"}},"addressType":"IPv4","endpoints":[\#(endpoints)],"ports":[{"name":"http","protocol":"TCP","port":8080}]}"#
    }

    func serviceJSON(_ service: Int) -> String {
        #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"svc-\#(service)","namespace":"bench","resourceVersion":"1"},"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":8080}]}}"#
    }

    /// Watch event `index` of a run: it modifies one slice, whose terminating endpoint moves on by one.
    func eventLine(_ index: Int, serviceCount: Int) -> [UInt8] {
        let service = index % serviceCount
        let slice = (index / serviceCount) % slicesPerService
        let json = sliceJSON(service: service, slice: slice, version: 1000 + index, notReady: index / (serviceCount * slicesPerService))
        return Array(#"{"type":"MODIFIED","object":"#.utf8) + Array(json.utf8) + Array("}\n".utf8)
    }

    /// A publisher for `source` holding the lease with every service published and synced, and the
    /// aggregator that knows those services.
    private func startPublishing(
        _ redis: RedisServer, source name: String, acknowledged: EndpointPublisher.AcknowledgmentObserver? = nil
    ) async throws -> (RedisEndpointStore, EndpointPublisher, Task<Void, Never>, EndpointSliceAggregator) {
        let source = try SourceCluster(name)
        let store = RedisEndpointStore(try RedisConfiguration(url: redis.url()))
        let publisher = EndpointPublisher(store: store, source: source, holder: "bench", logger: .quiet(), acknowledged: acknowledged)
        var aggregator = EndpointSliceAggregator(source: source, selection: ServiceSelection(excludeNamespaces: []))
        for service in 0..<max(1, slices / slicesPerService) {
            _ = aggregator.upsert(service: try ServiceObject(json: Array(serviceJSON(service).utf8)))
        }
        await publisher.replaceAll(Array(aggregator.sets.values))
        let task = Task { await publisher.run() }
        while await !publisher.status.isSynced { try await Task.sleep(for: .milliseconds(5)) }
        return (store, publisher, task, aggregator)
    }

    private func eventsRun(_ redis: RedisServer) async throws -> [String: String] {
        let serviceCount = max(1, slices / slicesPerService)
        let (store, publisher, task, initial) = try await startPublishing(redis, source: "bench-events")
        var aggregator = initial

        // The stream, pre-rendered: each event modifies one slice (its terminating endpoint moves on by one).
        var stream: [UInt8] = []
        for index in 0..<events { stream += eventLine(index, serviceCount: serviceCount) }
        let commandsBefore = await FanoutBenchmark.redisCommandsProcessed(port: redis.port)
        let cpuBefore = cpuSeconds()
        let started = ContinuousClock.now
        var framer = JSONObjectFramer()
        let memo = ReadMemo()
        var published = 0
        var read = 0
        // As the Kubernetes source does: the events of one 64 KiB read are aggregated, then their
        // changes handed to the publisher together.
        for chunkStart in stride(from: 0, to: stream.count, by: 64 << 10) {
            var changes: [EndpointChange] = []
            for object in try framer.feed(stream[chunkStart..<min(chunkStart + (64 << 10), stream.count)]) {
                let event = try WatchEvent<EndpointSliceObject>(json: object, memo: memo)
                guard case .modified(let slice) = event else { continue }
                read += 1
                changes += aggregator.upsert(slice: slice).changes
            }
            published += changes.count
            await publisher.apply(changes)
        }
        let processed = ContinuousClock.now - started
        while await publisher.status.pendingWrites > 0 { try await Task.sleep(for: .milliseconds(1)) }
        let drained = ContinuousClock.now - started
        let cpu = cpuSeconds() - cpuBefore
        let commands = await FanoutBenchmark.redisCommandsProcessed(port: redis.port) - commandsBefore - 1  // less INFO itself
        // What Redis holds must be what the aggregator holds: a fast run that published wrong is no run.
        let stored = try await store.storedHashes(source: publisher.source)
        guard read == events, stored == aggregator.sets.mapValues(\.contentHash) else {
            throw ValidationError(
                "the events run is wrong: \(read) of \(events) events read; Redis holds \(stored.count) services, \(stored.filter { aggregator.sets[$0.key]?.contentHash != $0.value }.count) of them not as aggregated"
            )
        }
        task.cancel()
        await task.value
        await store.close()
        let figures: [String: String] = [
            "redis commands per event": String(format: "%.3f", Double(commands) / Double(events)),
            "events": "\(events)", "endpointsPerSlice": "\(endpointsPerSlice)",
            "stream MiB": String(format: "%.1f", Double(stream.count) / 1_048_576),
            "events/s (wall, until Redis acknowledged all)": String(format: "%.0f", Double(events) / drained.seconds),
            "events/s per CPU second": String(format: "%.0f", Double(events) / cpu),
            "decode+aggregate wall seconds": String(format: "%.3f", processed.seconds), "sets handed to the publisher": "\(published)"
        ]
        print("events: \(events) MODIFIED events of \(endpointsPerSlice)-endpoint slices (\(figures["stream MiB"]!) MiB)")
        print(
            String(
                format:
                    "  %.0f events/s wall until Redis acknowledged all; %.0f events per CPU second (process CPU %.2f s over %.2f s); %.3f Redis commands per event",
                Double(events) / drained.seconds, Double(events) / cpu, cpu, drained.seconds, Double(commands) / Double(events)))
        return figures
    }

    /// Events arriving at `pacedRate` as a watch would deliver them; for each, the time from its bytes
    /// arriving to Redis acknowledging the write that carries it.
    private func pacedRun(_ redis: RedisServer) async throws -> [String: String] {
        let serviceCount = max(1, slices / slicesPerService)
        // Each upsert's sequence number against the acknowledgments' "through" numbers. An
        // acknowledgment may come before its upsert is booked here; the last one per service settles those.
        struct Pending {
            var fedAt: ContinuousClock.Instant
            var sequence: UInt64
        }
        struct Book {
            var pending: [ServiceKey: [Pending]] = [:]
            var acknowledged: [ServiceKey: (through: UInt64, at: ContinuousClock.Instant)] = [:]
            var latencies: [Duration] = []
        }
        let book = Mutex(Book())
        let (store, publisher, task, initial) = try await startPublishing(redis, source: "bench-paced") { acknowledgment, at in
            book.withLock { book in
                for key in acknowledgment.services {
                    book.acknowledged[key] = (acknowledgment.through, at)
                    guard let waiting = book.pending[key] else { continue }
                    book.latencies += waiting.filter { $0.sequence <= acknowledgment.through }.map { at - $0.fedAt }
                    book.pending[key] = waiting.filter { $0.sequence > acknowledgment.through }
                }
            }
        }
        var aggregator = initial
        let lines = (0..<pacedEvents).map { eventLine($0, serviceCount: serviceCount) }
        var framer = JSONObjectFramer()
        let memo = ReadMemo()
        let interval = Duration.seconds(1) / pacedRate
        let started = ContinuousClock.now
        var unchanged = 0
        for (index, line) in lines.enumerated() {
            try await Task.sleep(until: started + interval * index, clock: .continuous)
            let fedAt = ContinuousClock.now
            for object in try framer.feed(line) {
                guard case .modified(let slice) = try WatchEvent<EndpointSliceObject>(json: object, memo: memo) else { continue }
                let changes = aggregator.upsert(slice: slice).changes
                if changes.isEmpty { unchanged += 1 }
                for change in changes {
                    guard case .upsert(let set) = change else { continue }
                    guard let sequence = await publisher.upsert(set) else { continue }
                    book.withLock { book in
                        if let done = book.acknowledged[set.service], done.through >= sequence {
                            book.latencies.append(done.at - fedAt)
                        } else {
                            book.pending[set.service, default: []].append(Pending(fedAt: fedAt, sequence: sequence))
                        }
                    }
                }
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while book.withLock({ $0.pending.values.contains { !$0.isEmpty } }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        let elapsed = ContinuousClock.now - started
        task.cancel()
        await task.value
        await store.close()
        let latencies = book.withLock { $0.latencies }.sorted()
        func percentile(_ p: Double) -> Double {
            latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))].seconds * 1000
        }
        let figures: [String: String] = [
            "paced rate": "\(pacedRate)", "paced events": "\(pacedEvents)", "paced acknowledged": "\(latencies.count)",
            "paced p50 ms": String(format: "%.2f", percentile(0.5)), "paced p90 ms": String(format: "%.2f", percentile(0.9)),
            "paced p99 ms": String(format: "%.2f", percentile(0.99)),
            "paced max ms": String(format: "%.2f", latencies.last.map { $0.seconds * 1000 } ?? .nan)
        ]
        print(
            String(
                format:
                    "paced: %d events at %d/s over %.1f s; event received → Redis acknowledged p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (%d acknowledged, %d unchanged)",
                pacedEvents, pacedRate, elapsed.seconds, percentile(0.5), percentile(0.9), percentile(0.99),
                (latencies.last?.seconds ?? .nan) * 1000, latencies.count, unchanged))
        return figures
    }

    private func listRun(_ redis: RedisServer) async throws -> [String: String] {
        let serviceCount = max(1, slices / slicesPerService)
        let api = try await FakeKubernetesAPI()
        for service in 0..<serviceCount {
            try api.apply(.services, json: Data(serviceJSON(service).utf8))
            for slice in 0..<slicesPerService {
                try api.apply(.endpointslices, json: Data(sliceJSON(service: service, slice: slice, version: 1, notReady: -1).utf8))
            }
        }
        let source = try SourceCluster("bench-list")
        let store = RedisEndpointStore(try RedisConfiguration(url: redis.url()))
        let client = try KubernetesClient(KubernetesConnection(server: api.baseURL))
        let publisher = EndpointPublisher(store: store, source: source, holder: "bench", logger: .quiet())
        var options = KubernetesSource.Options()
        options.pageSize = 500
        let kubernetes = KubernetesSource(
            client: client, publisher: publisher, selection: ServiceSelection(excludeNamespaces: []), options: options, logger: .quiet())
        let started = ContinuousClock.now
        let tasks = [Task { await publisher.run() }, Task { await kubernetes.run() }]
        var listed: Duration?
        while await !publisher.status.isSynced {
            if listed == nil, await kubernetes.isListed { listed = ContinuousClock.now - started }
            try await Task.sleep(for: .microseconds(500))
        }
        let synced = ContinuousClock.now - started
        tasks.forEach { $0.cancel() }
        for task in tasks { await task.value }
        var feed = SourceFeed(source: source)
        _ = feed.apply(try await store.snapshot(of: source))
        let endpoints = feed.services.values.reduce(0) { $0 + $1.endpoints.count }
        await client.shutdown()
        await store.close()
        await api.shutdown()
        print(
            String(
                format:
                    "list: %d slices (%d endpoints, %d services) listed over HTTP in %.0f ms, published to Redis with canary at %.0f ms",
                slices, endpoints, serviceCount, (listed ?? synced).seconds * 1000, synced.seconds * 1000))
        return [
            "list slices": "\(slices)", "list endpoints": "\(endpoints)",
            "list ms (HTTP list + decode + aggregate)": String(format: "%.0f", (listed ?? synced).seconds * 1000),
            "list to canary ms": String(format: "%.0f", synced.seconds * 1000)
        ]
    }

    private func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(
            usage.ru_stime.tv_usec) / 1e6
    }
}
