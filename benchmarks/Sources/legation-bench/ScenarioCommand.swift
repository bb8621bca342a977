import ArgumentParser
import Foundation
import LegationLoad
import LegationTestSupport
import Shared

#if canImport(Glibc)
    import Glibc
    import RedisStore
    import LocalProcesses
#endif

/// `legation-bench scenario p1|p2|p3`: the scenario runner. It starts what a scenario needs
/// (redis-server, fake API servers with churn, `legation ingestor` and `legation xds-server` processes,
/// simulated sidecars), measures, and writes `<scenario>.json`, `<scenario>.md` and SVG charts into
/// `--output-directory`, recording the machine, the commit and the exact command.
struct ScenarioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "Run scenario P1 (fan-out vs N), P2 (large mesh: new sidecar, cold start, reconnect storm) or P3 (end to end).")

    @Argument(help: "p1, p2 or p3.") var name: String
    @Option(help: "P1: stream counts, comma-separated.") var streams = "1000,5000,10000"
    @Option(help: "P1: updates per N.") var updates = 20
    @Option(help: "P2: sidecars reconnecting at once; P3: sidecars receiving the changes.") var sidecars = 1000
    @Option(help: "P2: new sidecars timed one after another.") var newSidecars = 50
    @Option(help: "P2/P3: services (P2 default 1000, P3 default 100).") var services: Int?
    @Option(help: "P2: endpoints per service over all sources (default 50); P3: per source (default 20).") var endpoints: Int?
    @Option(help: "P2/P3: source clusters.") var sources = 3
    @Option(help: "P3: EndpointSlice changes (bounded).") var changes = 50
    @Option(help: "P3: changes per second.") var rate = 5.0
    @Flag(help: "Incremental xDS instead of state of the world.") var delta = false
    @Option(help: "The sidecars' gRPC client: nio (cheap, the default) or grpc-swift.") var client = SimulatedSidecar.Client.nio
    @Option(help: "The xds-server's debounce quiet period, ms.") var debounceQuietMs = 10
    @Option(help: "The xds-server's debounce maximum, ms.") var debounceMaxMs = 100
    @Option(help: "The legation binary (default: next to this one).") var legation: String?
    @Option(help: "Where results go.") var outputDirectory = "benchmarks/results"
    @Option(help: "Give up after this many seconds in all.") var timeout = 1200

    func validate() throws {
        guard ["p1", "p2", "p3"].contains(name) else { throw ValidationError("the scenario is p1, p2 or p3") }
        guard streamCounts.allSatisfy({ (1...20_000).contains($0) }), !streamCounts.isEmpty else {
            throw ValidationError("--streams: 1...20000 each")
        }
        guard (1...10_000).contains(sidecars), (1...1000).contains(newSidecars), (1...10_000).contains(services ?? 1),
            (1...200).contains(endpoints ?? 1), (1...6).contains(sources), (1...10_000).contains(changes), rate > 0, rate <= 1000,
            (1...10_000).contains(updates), (1...86_400).contains(timeout)
        else { throw ValidationError("a value is out of bounds") }
    }

    var streamCounts: [Int] { streams.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
    var mode: String { delta ? "delta" : "sotw" }
    var binary: String {
        legation ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("legation").path
    }

    func run() async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        switch name {
        case "p1": try await p1(deadline)
        case "p2": try await p2(deadline)
        default: try await p3(deadline)
        }
    }

    // MARK: P1

    /// Fan-out at each N: the `fanout` command once per N, then one table and two charts.
    func p1(_ deadline: ContinuousClock.Instant) async throws {
        var report = BenchReport(name: "p1-\(mode)", directory: outputDirectory)
        let targets: [Int: (p99: Double, sync: Double)] = [1000: (50, 300), 5000: (250, 1500), 10_000: (500, 3000)]
        var runs: [[String: Any]] = []
        var cdf: [(name: String, samples: [Double])] = []
        var p50: [(Double, Double)] = []
        var p99: [(Double, Double)] = []
        var sync: [(Double, Double)] = []
        report.markdown += [
            "P1 fan-out, \(mode): 100 clusters × 20 endpoints, one ClusterLoadAssignment changes per update, \(updates) updates;",
            "debounce quiet \(debounceQuietMs) ms / max \(debounceMaxMs) ms (included in the latencies). Client and server share the cores.",
            "",
            "| N | initial sync (all N) | update p50 / p90 / p99 / max | target p99 / sync | server CPU per stream-update | RSS per stream | bytes per update | Redis commands per update |",
            "|---|---|---|---|---|---|---|---|"
        ]
        for n in streamCounts {
            let remaining = Int((deadline - .now).components.seconds)
            guard remaining > 10 else { throw ValidationError("out of time before N = \(n)") }
            var arguments = [
                "--streams", String(n), "--updates", String(updates), "--timeout", String(min(remaining, 900)),
                "--debounce-quiet-ms", String(debounceQuietMs), "--debounce-max-ms", String(debounceMaxMs)
            ]
            if delta { arguments.append("--delta") }
            if let legation { arguments += ["--legation", legation] }
            arguments += ["--client", client.rawValue]
            let result = try await FanoutBenchmark.parse(arguments).measure()
            say(result.line)
            runs.append(result.figures)
            let f = result.figures
            let percentiles = Percentiles(result.latencies)
            cdf.append(("N = \(n)", result.latencies))
            p50.append((Double(n), percentiles.p50))
            p99.append((Double(n), percentiles.p99))
            sync.append((Double(n), f["initial_sync_ms"] as? Double ?? 0))
            let target = targets[n].map { "\(Int($0.p99)) ms / \(Int($0.sync)) ms" } ?? "–"
            report.markdown.append(
                String(
                    format: "| %d | %.0f ms | %.1f / %.1f / %.1f / %.1f ms | %@ | %.1f µs | %.0f KB | %d | %.1f |",
                    n, f["initial_sync_ms"] as? Double ?? 0, percentiles.p50, percentiles.p90, percentiles.p99, percentiles.max, target,
                    f["server_cpu_us_per_stream_update"] as? Double ?? 0, f["server_rss_kb_per_stream"] as? Double ?? 0,
                    f["bytes_per_update"] as? Int ?? 0, f["redis_commands_per_update"] as? Double ?? 0))
        }
        report.figures["runs"] = runs
        report.charts.append(("p1-\(mode)-cdf.svg", SVGChart.cdf(title: "P1 \(mode): update latency, CDF per N", series: cdf)))
        let targetPoints = streamCounts.compactMap { n in targets[n].map { (Double(n), $0.p99) } }
        report.charts.append(
            (
                "p1-\(mode)-vs-n.svg",
                SVGChart.lines(
                    title: "P1 \(mode): update latency vs N", xLabel: "streams (N)", yLabel: "ms",
                    series: [("p50", p50), ("p99", p99)] + (targetPoints.isEmpty ? [] : [("target p99", targetPoints)]), logX: true)
            ))
        report.charts.append(
            (
                "p1-\(mode)-sync-vs-n.svg",
                SVGChart.lines(
                    title: "P1 \(mode): initial sync of all N", xLabel: "streams (N)", yLabel: "ms",
                    series: [("initial sync", sync)] + [
                        ("target", streamCounts.compactMap { n in targets[n].map { (Double(n), $0.sync) } })
                    ], logX: true)
            ))
        try report.write()
    }

    // MARK: Processes shared by P2 and P3

    struct Server {
        let process: ChildProcess
        let port: Int
        let admin: Int
    }

    func startServer(redis: RedisServer, sources: [String]) throws -> Server {
        let port = try freeLoopbackPort()
        let admin = try freeLoopbackPort()
        let debug = try freeLoopbackPort()
        let process = try ChildProcess(
            binary,
            [
                "xds-server", "--redis-url", redis.url(), "--listen", "127.0.0.1:\(port)", "--admin-address", "127.0.0.1:\(admin)",
                "--debug-address", "127.0.0.1:\(debug)", "--debounce-quiet", String(debounceQuietMs), "--debounce-max",
                String(debounceMaxMs),
                "--max-streams", "20000", "--log-level", "error"
            ] + sources.flatMap { ["--source", $0] })
        return Server(process: process, port: port, admin: admin)
    }

    /// Waits until `condition` holds; the time it took, or throws at the deadline.
    func wait(_ what: String, until deadline: ContinuousClock.Instant, poll: Duration = .milliseconds(2), _ condition: () -> Bool)
        async throws -> Duration
    {
        let started = ContinuousClock.now
        while !condition() {
            guard ContinuousClock.now < deadline else { throw ValidationError("timed out: \(what)") }
            try await Task.sleep(for: poll)
        }
        return ContinuousClock.now - started
    }

    /// When `sidecar` held all `clusters` assignments (the last first arrival), or nil.
    static func syncedAt(_ sidecar: SimulatedSidecar, clusters: Int) -> ContinuousClock.Instant? {
        sidecar.state.withLock { $0.assignments.count >= clusters ? $0.assignments.values.max() : nil }
    }

    // MARK: P2

    /// Large mesh: S services × E endpoints split over the sources, published into Redis; then
    /// (1) xds-server cold start: process start → first sidecar holding every assignment;
    /// (2) new sidecars one at a time: connect → every assignment;
    /// (3) a reconnect storm: N sidecars at once → all synced.
    func p2(_ deadline: ContinuousClock.Instant) async throws {
        let services = services ?? 1000
        let endpoints = endpoints ?? 50
        var report = BenchReport(name: "p2-\(mode)", directory: outputDirectory)
        let redis = try await RedisServer()
        defer { redis.kill() }
        let names = (0..<sources).map { "cluster-\($0)" }
        let store = RedisEndpointStore(try redis.configuration(), logger: .quiet())
        for (index, name) in names.enumerated() {
            let source = try SourceCluster(name)
            let lease = try await store.acquireLease(source: source, holder: "bench", ttl: .seconds(3600))!
            try await store.heartbeat(lease: lease, ttl: .seconds(3600))
            let sets = try (0..<services).map { service in
                let mine = (0..<endpoints).filter { $0 % sources == index }
                return try EndpointSet(
                    source: source, service: ServiceKey(namespace: "bench", name: "svc-\(service)"),
                    ports: [ServicePort(name: "http", port: 80)],
                    endpoints: mine.map { e in
                        try Endpoint(
                            address: "10.\(index * 40 + service / 250).\(service % 250).\(e + 1)", targetPorts: [8080],
                            zone: "\(name)-zone-\(e % 3)",
                            node: "node-\(e % 10)", targetPod: "bench/svc-\(service)-\(e)")
                    })
            }
            let result = try await store.write(sets.map(StoreWrite.put), lease: lease)
            try await store.markSynced(generation: result.generation, serviceCount: services, lease: lease)
        }
        await store.close()

        // (1) Cold start.
        let startedAt = ContinuousClock.now
        let server = try startServer(redis: redis, sources: names)
        defer {
            server.process.kill(SIGTERM)
        }
        let first = SimulatedSidecar(id: 0, delta: delta)
        let firstTask = Task {
            await first.run(
                servers: [("127.0.0.1", server.port)], zone: "cluster-0-zone-0", reconnect: true, retryPause: 1...3, client: client)
        }
        _ = try await wait("the first sidecar after a cold start", until: deadline) { Self.syncedAt(first, clusters: services) != nil }
        let coldStart = Self.syncedAt(first, clusters: services)! - startedAt
        firstTask.cancel()
        say(
            String(
                format: "P2 cold start: %.0f ms from process start to a sidecar holding all %d assignments", coldStart.milliseconds,
                services))

        // (2) New sidecars, one at a time.
        var newSync: [Double] = []
        for id in 1...newSidecars {
            let sidecar = SimulatedSidecar(id: id, delta: delta)
            let connectedAt = ContinuousClock.now
            let task = Task { await sidecar.run(servers: [("127.0.0.1", server.port)], zone: "cluster-0-zone-0", client: client) }
            _ = try await wait("new sidecar \(id)", until: deadline) { Self.syncedAt(sidecar, clusters: services) != nil }
            newSync.append((Self.syncedAt(sidecar, clusters: services)! - connectedAt).milliseconds)
            task.cancel()
            await task.value
        }
        let newPercentiles = Percentiles(newSync)
        say(
            String(
                format: "P2 new sidecar fully synced: p50 %.1f / p99 %.1f / max %.1f ms (%d sidecars, one at a time)",
                newPercentiles.p50, newPercentiles.p99, newPercentiles.max, newSidecars))

        // (3) Reconnect storm.
        let stormAt = ContinuousClock.now
        let storm = (0..<sidecars).map { SimulatedSidecar(id: 1000 + $0, delta: delta) }
        let tasks = storm.map { sidecar in
            Task { await sidecar.run(servers: [("127.0.0.1", server.port)], zone: "cluster-0-zone-0", reconnect: true, client: client) }
        }
        defer { tasks.forEach { $0.cancel() } }
        _ = try await wait("the reconnect storm", until: deadline, poll: .milliseconds(20)) {
            storm.allSatisfy { Self.syncedAt($0, clusters: services) != nil }
        }
        let stormSync = storm.map { (Self.syncedAt($0, clusters: services)! - stormAt).milliseconds }
        let stormPercentiles = Percentiles(stormSync)
        let rss = FanoutBenchmark.rssKilobytes(server.process.pid)
        say(
            String(
                format: "P2 reconnect storm: %d sidecars at once, all synced after %.0f ms (p50 %.0f ms); server RSS %.0f MB",
                sidecars, stormPercentiles.max, stormPercentiles.p50, Double(rss) / 1024))

        report.figures["mesh"] = "\(services) services × \(endpoints) endpoints over \(sources) sources"
        report.figures["cold_start_ms"] = coldStart.milliseconds
        report.figures["new_sidecar"] = newPercentiles.summary
        report.figures["reconnect_storm"] = stormPercentiles.summary.merging(["sidecars": Double(sidecars)]) { $1 }
        report.figures["server_rss_mb"] = Double(rss) / 1024
        report.markdown += [
            "P2 large mesh, \(mode): \(services) services × \(endpoints) endpoints over \(sources) source clusters (published into Redis as ingestors would).",
            "",
            "| figure | measured | target |", "|---|---|---|",
            String(
                format: "| xds-server cold start: process start → first sidecar holding all %d assignments | %.0f ms | ≤ 150 ms |",
                services, coldStart.milliseconds),
            String(
                format: "| a new sidecar fully synced (%d, one at a time) | p50 %.1f / p99 %.1f / max %.1f ms | p99 ≤ 75 ms |",
                newSidecars, newPercentiles.p50, newPercentiles.p99, newPercentiles.max),
            String(
                format: "| %d sidecars connecting at once: all synced | %.0f ms (p50 %.0f ms) | ≤ 5 s |", sidecars, stormPercentiles.max,
                stormPercentiles.p50),
            String(format: "| server RSS after the storm | %.0f MB | |", Double(rss) / 1024)
        ]
        report.charts.append(
            (
                "p2-\(mode)-cdf.svg",
                SVGChart.cdf(
                    title: "P2 \(mode): time to full sync", series: [("new sidecar, alone", newSync), ("\(sidecars) at once", stormSync)])
            ))
        try report.write()
    }

    // MARK: P3

    /// End to end: churn in fake API servers → `legation ingestor` per source → Redis → `legation
    /// xds-server` → N sidecars. Each change is timed from the API server applying it to each sidecar
    /// receiving the changed assignment.
    func p3(_ deadline: ContinuousClock.Instant) async throws {
        let services = services ?? 100
        let endpoints = endpoints ?? 20
        var report = BenchReport(name: "p3-\(mode)", directory: outputDirectory)
        let redis = try await RedisServer()
        defer { redis.kill() }
        let churn = try await ChurnGenerator(sources: sources, services: services, endpoints: endpoints)
        let directory = try TemporaryDirectory(prefix: "legation-bench-p3")
        defer { directory.remove() }
        var ingestors: [ChildProcess] = []
        for (source, kubeconfig) in zip(churn.sources, try churn.writeKubeconfigs(to: directory.path)) {
            ingestors.append(
                try ChildProcess(
                    binary,
                    [
                        "ingestor", "--source", source, "--kubeconfig", kubeconfig, "--redis-url", redis.url(), "--holder",
                        "\(source)-bench",
                        "--admin-address", "127.0.0.1:\(try freeLoopbackPort())", "--log-level", "error"
                    ]))
        }
        let server = try startServer(redis: redis, sources: churn.sources)
        defer {
            server.process.kill(SIGTERM)
            ingestors.forEach { $0.kill(SIGTERM) }
        }
        let fleet = (0..<sidecars).map { SimulatedSidecar(id: $0, delta: delta) }
        let tasks = fleet.map { sidecar in
            Task { await sidecar.run(servers: [("127.0.0.1", server.port)], zone: "cluster-0-zone-0", reconnect: true, client: client) }
        }
        defer { tasks.forEach { $0.cancel() } }
        let synced = try await wait("all sidecars synced", until: deadline, poll: .milliseconds(20)) {
            fleet.allSatisfy { Self.syncedAt($0, clusters: services) != nil }
        }
        say(
            String(
                format: "P3: %d sidecars synced with %d services from %d sources in %.0f ms", sidecars, services, sources,
                synced.milliseconds))
        try await Task.sleep(for: .milliseconds(500))

        let commandsBefore = await FanoutBenchmark.redisCommandsProcessed(port: redis.port)
        var made: [(cluster: String, at: ContinuousClock.Instant)] = []
        let count = try await churn.run(rate: rate, count: changes, until: deadline) { _, cluster, at in made.append((cluster, at)) }
        // Every change must reach every sidecar.
        var latencies: [Double] = []
        var missing = 0
        let settleBy = ContinuousClock.now + .seconds(30)
        for (index, change) in made.enumerated() {
            // The same cluster changes again only after this many others (sources × services); the
            // arrival belongs to this change if it came before the next change of that cluster.
            let next = made[(index + 1)...].first { $0.cluster == change.cluster }?.at
            for sidecar in fleet {
                var arrival: ContinuousClock.Instant?
                while arrival == nil, ContinuousClock.now < min(deadline, settleBy) {
                    arrival = sidecar.state.withLock { state in
                        state.arrivals.first { $0.name == change.cluster && $0.at >= change.at && (next == nil || $0.at < next!) }?.at
                    }
                    if arrival == nil { try await Task.sleep(for: .milliseconds(5)) }
                }
                if let arrival { latencies.append((arrival - change.at).milliseconds) } else { missing += 1 }
            }
        }
        let commandsAfter = await FanoutBenchmark.redisCommandsProcessed(port: redis.port)
        let percentiles = Percentiles(latencies)
        let commandsPerChange = Double(commandsAfter - commandsBefore) / Double(max(1, count))
        say(
            String(
                format:
                    "P3 %@: %d changes at %.0f/s to %d sidecars: p50 %.1f / p90 %.1f / p99 %.1f / max %.1f ms (debounce quiet %d / max %d ms); %d deliveries missing; Redis %.1f commands per change",
                mode, count, rate, sidecars, percentiles.p50, percentiles.p90, percentiles.p99, percentiles.max, debounceQuietMs,
                debounceMaxMs, missing, commandsPerChange))
        report.figures["changes"] = count
        report.figures["sidecars"] = sidecars
        report.figures["latency"] = percentiles.summary
        report.figures["missing_deliveries"] = missing
        report.figures["debounce_quiet_ms"] = debounceQuietMs
        report.figures["debounce_max_ms"] = debounceMaxMs
        report.figures["redis_commands_per_change"] = commandsPerChange
        report.markdown += [
            "P3 end to end, \(mode): \(sources) fake API servers × \(services) services × \(endpoints) endpoints → one `legation ingestor` per source → Redis → `legation xds-server` → \(sidecars) sidecars.",
            "\(count) EndpointSlice changes at \(rate)/s, each timed from the API server applying it to each sidecar receiving the changed assignment.",
            "",
            "| figure | measured | target |", "|---|---|---|",
            String(
                format: "| change → sidecar, p50 / p90 / p99 / max | %.1f / %.1f / %.1f / %.1f ms | p99 ≤ debounce window + 50 ms |",
                percentiles.p50, percentiles.p90, percentiles.p99, percentiles.max),
            "| debounce window (xds-server), quiet / max | \(debounceQuietMs) / \(debounceMaxMs) ms | |",
            "| deliveries missing | \(missing) of \(count * sidecars) | 0 |",
            String(format: "| Redis commands per change (all processes) | %.1f | |", commandsPerChange)
        ]
        report.charts.append(
            (
                "p3-\(mode)-cdf.svg",
                SVGChart.cdf(title: "P3 \(mode): EndpointSlice change → sidecar", series: [("\(sidecars) sidecars", latencies)])
            ))
        try report.write()
        await churn.shutdown()
    }
}

/// Prints a progress line and flushes it, so it reaches a log file as it happens.
func say(_ line: String) {
    print(line)
    fflush(nil)
}
