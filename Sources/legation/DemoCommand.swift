import ArgumentParser
import Foundation
import Ingestor
import Logging
import Metrics
import Prometheus
import RedisStore
import Server
import Shared
import Synchronization
import UnixSignals

/// `legation demo`: the whole pipeline on one machine with no Kubernetes and no Redis needed. Two file
/// sources ("east", "west") are published by two ingestors into the embedded store (or a Redis you name),
/// a reader merges them into the multi-cluster index, an xds-server serves it to a real Envoy (when one is
/// installed: scripts/install-deps.sh --e2e) that routes requests to echo "pods" of both clusters, and the
/// demo changes the sources (pods terminating, a scale-up) to show each change arrive, with its latency.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the local demo: two source clusters merged into one mesh view (no cluster, no Redis needed).")

    @OptionGroup var redis: RedisOptions

    @Flag(help: "Keep running after the scripted changes; edit the printed YAML files and watch the view follow.")
    var keepRunning = false

    @Option(help: "Log level for the components (their logs go to standard error).")
    var logLevel: Logger.Level = .warning

    @Option(help: ArgumentHelp("Envoy binary (default: LEGATION_ENVOY, .venv-e2e/bin/envoy, or envoy on PATH).", valueName: "path"))
    var envoy: String?

    @Flag(help: "Skip the xds-server and Envoy part.")
    var noEnvoy = false

    func run() async throws {
        LoggingSetup.bootstrap(level: logLevel, json: false)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let envoyBinary = noEnvoy ? nil : DemoMesh.findEnvoy(envoy)
        let upstreams = envoyBinary == nil ? [] : try await DemoMesh.startUpstreams(port: 0)
        let echoPort = String(upstreams.first?.port ?? 8080)
        let directory = NSTemporaryDirectory() + "legation-demo-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { if !keepRunning { try? FileManager.default.removeItem(atPath: directory) } }
        let files = ["east": directory + "/east.yaml", "west": directory + "/west.yaml"]
        try DemoData.east.replacingOccurrences(of: "ECHO_PORT", with: echoPort).write(
            toFile: files["east"]!, atomically: true, encoding: .utf8)
        try DemoData.west.replacingOccurrences(of: "ECHO_PORT", with: echoPort).write(
            toFile: files["west"]!, atomically: true, encoding: .utf8)

        let store: any EndpointStore
        let storeName: String
        if let configuration = try redis.configuration(clientName: "legation-demo") {
            store = RedisEndpointStore(configuration)
            storeName = "Redis at \(configuration.redactedURL)"
        } else {
            store = InMemoryEndpointStore()
            storeName = "the embedded in-memory store"
        }
        print(
            """
            Legation demo
              sources   east → \(files["east"]!)
                        west → \(files["west"]!)
              store     \(storeName)
              pipeline  file source → ingestor (lease, publish) → store → reader → merged index

            """)

        let view = DemoView()
        var tasks: [Task<Void, Never>] = []
        for name in ["east", "west"] {
            let source = try SourceCluster(name)
            var options = EndpointPublisher.Options()
            options.leaseTTL = .seconds(5)
            let publisher = EndpointPublisher(store: store, source: source, holder: "demo-\(name)", options: options)
            let watcher = FileSourceWatcher(path: files[name]!, publisher: publisher, pollInterval: .milliseconds(50))
            tasks.append(Task { await publisher.run() })
            tasks.append(Task { await watcher.run() })
        }
        var followerOptions = StoreFollower.Options()
        followerOptions.discoveryInterval = .milliseconds(100)
        followerOptions.pollWait = .milliseconds(500)
        let follower = StoreFollower(reader: store, options: followerOptions) { view.apply($0) }
        tasks.append(Task { await follower.run() })
        defer { tasks.forEach { $0.cancel() } }

        guard try await view.waitUntil({ $0.syncedSources == 2 }) else {
            throw ValidationError("the demo did not sync within 10 s; run with --log-level info to see why")
        }
        print("Merged view of both clusters (an Envoy cluster is namespace/service:port):\n")
        print(view.render())

        var mesh: DemoMesh?
        if let envoyBinary {
            let started = try await DemoMesh(
                store: store, upstreams: upstreams, envoyBinary: envoyBinary, directory: directory, registry: registry,
                logger: Logger(label: "legation.demo.xds"))
            mesh = started
            print(
                "xds-server on 127.0.0.1:\(started.xdsPort) (admin 127.0.0.1:\(started.adminPort)); Envoy \(envoyBinary) connected over ADS,"
            )
            print("listening on 127.0.0.1:\(started.envoyListenerPort) and routing to \(DemoMesh.echoCluster).")
            guard try await started.waitUntil({ await started.envoyHosts().count == 3 }) else {
                await started.stop()
                throw ValidationError("Envoy did not get all three echo pods within 30 s; its log: \(started.envoyLog)")
            }
            print("The sidecar is in zone \(DemoMesh.sidecarZone). Its priorities by locality: its zone, then its region, then the rest.")
            print("Envoy's own view (its admin /clusters):")
            print(started.renderHosts(await started.envoyHosts()))
            print("  12 requests through Envoy: \(DemoMesh.render(await started.requestsThroughEnvoy()))  (all in the sidecar's zone)\n")
        } else if !noEnvoy {
            print("(No Envoy found: run scripts/install-deps.sh --e2e, or pass --envoy; showing the merged view only.)\n")
        }

        try await change(
            files["east"]!, to: DemoData.eastDraining.replacingOccurrences(of: "ECHO_PORT", with: echoPort), view: view,
            what: "east: pod echo-east-a, in the sidecar's zone, is terminating (ready=false, serving=true, terminating=true)",
            expect: { $0.health(of: "127.0.0.2") == .draining })
        if let mesh {
            let started = ContinuousClock.now
            _ = try await mesh.waitUntil(timeout: .seconds(10)) { await mesh.envoyHosts()["127.0.0.2"]?.health == "DRAINING" }
            print(
                "Envoy's own view (its admin /clusters), \((ContinuousClock.now - started).formatted(.units(allowed: [.milliseconds]))) later:"
            )
            print(mesh.renderHosts(await mesh.envoyHosts()))
            print(
                "  12 requests through Envoy: \(DemoMesh.render(await mesh.requestsThroughEnvoy()))  (none to the draining pod: on to the next priority)\n"
            )
        }
        try await change(
            files["east"]!, to: DemoData.eastScaled.replacingOccurrences(of: "ECHO_PORT", with: echoPort), view: view,
            what: "east: web scaled from 2 to 3 replicas",
            expect: { $0.index.members(of: $0.webHTTP).count == 4 })

        print(
            """
            What to look at:
              - default/web:http and default/checkout:grpc hold endpoints of both clusters (east and west);
              - locality = zone/source cluster; each sidecar gets priorities by its own place (zone, then region,
                then the rest; a Service's legation.io/failover annotation changes the order): traffic stays in its
                zone and moves across zones and clusters only as its zone's pods go;
              - a terminating pod is DRAINING, not removed: Envoy stops sending it new requests while it finishes.
            """)
        if let mesh {
            print(
                """
                  - Envoy: curl 127.0.0.1:\(mesh.envoyListenerPort)/ (a pod answers), curl 127.0.0.1:\(mesh.envoyAdminPort)/clusters
                  - the xds-server: legation status --debug 127.0.0.1:\(mesh.adminPort) (what each sidecar holds, ACKs, NACKs);
                    curl 127.0.0.1:\(mesh.adminPort)/debug/resources, /debug/sources, /metrics
                """)
        }
        if keepRunning {
            print("Running until Ctrl-C (or SIGTERM): edit \(directory)/*.yaml and watch the view change.\n")
            fflush(nil)  // the ports above, now, also when the output goes to a file or a pipe
            // Either signal stops Envoy and the servers below: a demo ended by `kill` left its Envoy
            // running, holding its ports.
            let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in signals { return }
                }
                group.addTask {
                    var rendered = view.render()
                    while !Task.isCancelled {
                        try await Task.sleep(for: .milliseconds(200))
                        let now = view.render()
                        if now != rendered {
                            print(now)
                            fflush(nil)
                            rendered = now
                        }
                    }
                }
                try await group.next()
                group.cancelAll()
            }
            print("Stopping.")
        }
        await mesh?.stop()
    }

    private func change(_ file: String, to text: String, view: DemoView, what: String, expect: @escaping @Sendable (DemoView.State) -> Bool)
        async throws
    {
        let started = ContinuousClock.now
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        guard try await view.waitUntil(expect) else { throw ValidationError("the change did not arrive within 10 s") }
        let elapsed = ContinuousClock.now - started
        print(
            "Change: \(what)\n  arrived in the merged view \(elapsed.formatted(.units(allowed: [.milliseconds]))) after the file was written (includes the file poll interval, 50 ms)\n"
        )
        print(view.render())
    }
}
