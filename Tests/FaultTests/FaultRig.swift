import AsyncHTTPClient
import Foundation
import LegationLoad
import LegationTestSupport
import LocalProcesses
import Server
import Shared
import Testing

/// Everything of a Legation mesh as separate processes on loopback, for the fault tests: Redis (one
/// redis-server, a Sentinel set, or a Redis Cluster), a fake Kubernetes API server per source cluster ("east", "west"), `legation ingestor`
/// processes (one or two per source), `legation xds-server` replicas on fixed ports (so one can be
/// restarted where its sidecars look for it), simulated sidecars (half state of the world, half delta)
/// that reconnect like Envoy and keep what they hold, and optionally one real Envoy routing HTTP to
/// upstream servers in both clusters.
///
/// The mesh: `services` services in namespace `default` with `endpoints` endpoints in each source, plus
/// `echo`, whose endpoints are real HTTP servers (the Envoy's listener routes to it).
final class FaultRig: @unchecked Sendable {
    struct Options {
        var sources = ["east", "west"]
        var ingestorsPerSource = 1
        var replicas = 1
        var sidecars = 100
        var services = 20
        var endpoints = 5
        var envoy = false
        var redisAppendOnly = false
        var leaseTTLSeconds = 3
        var redisTopology = RedisTopology.single
    }

    enum RedisTopology {
        case single
        /// A primary, one replica and three sentinels.
        case sentinel
        /// Three shards, each a primary with one replica.
        case cluster
    }

    struct Process {
        let process: ChildProcess
        let admin: Int
        let log: String
    }

    static let build = Repository.root.appendingPathComponent(".build/debug")
    static let echo = "default/echo:http"

    let options: Options
    let directory: TemporaryDirectory
    /// The Redis server (single topology).
    let redis: RedisServer?
    let sentinels: RedisSentinelSet?
    let cluster: RedisClusterNodes?
    /// What the processes are given as `--redis-url`.
    let redisURL: String
    private(set) var apis: [String: FakeKubernetesAPI] = [:]
    private(set) var ingestors: [String: Process] = [:]  // by holder: "east-a", "east-b"
    let replicaPorts: [Int]
    private(set) var replicas: [Int: Process] = [:]  // by xDS port
    private(set) var sidecars: [SimulatedSidecar] = []
    private var sidecarTasks: [Task<Void, Never>] = []
    private(set) var envoy: EnvoyProcess?
    private var upstreams: [NamedHTTPServer] = []
    private let podPort: Int
    /// What each source's API holds now: source → service → endpoint addresses.
    private(set) var published: [String: [Int: [String]]] = [:]

    static var legation: String { build.appendingPathComponent("legation").path }

    init(_ options: Options) async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.legation), "build first: swift build --build-tests")
        self.options = options
        directory = try TemporaryDirectory(prefix: "legation-fault")
        var redisOptions = RedisServer.Options()
        redisOptions.appendOnly = options.redisAppendOnly
        switch options.redisTopology {
        case .single:
            let server = try await RedisServer(redisOptions)
            (redis, sentinels, cluster, redisURL) = (server, nil, nil, server.url())
        case .sentinel:
            let set = try await RedisSentinelSet(replicas: 1, sentinels: 3)
            (redis, sentinels, cluster, redisURL) = (nil, set, nil, set.url)
        case .cluster:
            let nodes = try await RedisClusterNodes(primaries: 3, replicasPerPrimary: 1)
            (redis, sentinels, cluster, redisURL) = (nil, nil, nodes, nodes.url)
        }
        replicaPorts = try (0..<options.replicas).map { _ in try freeLoopbackPort() }
        podPort = try freeLoopbackPort()

        for (offset, source) in options.sources.enumerated() {
            let api = try await FakeKubernetesAPI()
            apis[source] = api
            let upstream = try await NamedHTTPServer.start(name: source, host: "127.0.0.\(2 + offset)", port: podPort)
            upstreams.append(upstream)
            try apply(source, service: "echo", addresses: [upstream.host], port: podPort)
            for service in 0..<options.services {
                try setEndpoints(
                    source, service: service,
                    addresses: (0..<options.endpoints).map { Self.address(source: offset, service: service, endpoint: $0) })
            }
            let kubeconfig = """
                apiVersion: v1
                kind: Config
                current-context: fake
                clusters: [{name: fake, cluster: {server: "\(api.baseURL)"}}]
                users: [{name: fake, user: {}}]
                contexts: [{name: fake, context: {cluster: fake, user: fake}}]
                """
            _ = try directory.write("kubeconfig-\(source)", kubeconfig)
            // Heartbeats every second: a source that stops answering turns stale within seconds.
            _ = try directory.write("ingestor-\(source).yaml", "publish:\n  heartbeatSeconds: 1\n")
            for standby in 0..<options.ingestorsPerSource {
                try startIngestor(source: source, holder: "\(source)-\(["a", "b", "c"][standby])")
            }
        }
        for port in replicaPorts { try startReplica(port: port) }
    }

    static func address(source: Int, service: Int, endpoint: Int) -> String {
        "10.\(1 + source).\(service).\(10 + endpoint)"
    }

    // MARK: The sources

    /// Sets service `svc-<service>`'s endpoints in `source`'s API (one EndpointSlice; port 8080).
    func setEndpoints(_ source: String, service: Int, addresses: [String]) throws {
        try apply(source, service: "svc-\(service)", addresses: addresses, port: 8080)
        published[source, default: [:]][service] = addresses
    }

    private func apply(_ source: String, service: String, addresses: [String], port: Int) throws {
        let api = try #require(apis[source])
        let serviceJSON =
            #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(service)","namespace":"default","uid":"\#(source)-\#(service)"},"spec":{"type":"ClusterIP","clusterIP":"10.96.0.10","ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":\#(port)}]}}"#
        try api.apply(.services, json: Data(serviceJSON.utf8))
        let endpoints = addresses.enumerated().map { offset, address in
            #"{"addresses":["\#(address)"],"conditions":{"ready":true,"serving":true,"terminating":false},"zone":"\#(source)-zone-a","nodeName":"\#(source)-node-\#(offset % 3)","targetRef":{"kind":"Pod","namespace":"default","name":"\#(service)-\#(source)-\#(offset)"}}"#
        }.joined(separator: ",")
        let slice =
            #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"\#(service)-\#(source)","namespace":"default","labels":{"kubernetes.io/service-name":"\#(service)"}},"addressType":"IPv4","ports":[{"name":"http","port":\#(port),"protocol":"TCP"}],"endpoints":[\#(endpoints)]}"#
        try api.apply(.endpointslices, json: Data(slice.utf8))
    }

    /// The merged truth: cluster name → "address:port" of every endpoint (what every sidecar must hold).
    var truth: [String: Set<String>] {
        var result: [String: Set<String>] = [Self.echo: Set(upstreams.map { "\($0.host):\(podPort)" })]
        for (_, services) in published {
            for (service, addresses) in services {
                result["default/svc-\(service):http", default: []].formUnion(addresses.map { "\($0):8080" })
            }
        }
        return result
    }

    // MARK: Processes

    func startIngestor(source: String, holder: String) throws {
        let admin = try freeLoopbackPort()
        let log = directory.file("ingestor-\(holder).log")
        let process = try ChildProcess(
            Self.legation,
            [
                "ingestor", "--config", directory.file("ingestor-\(source).yaml"), "--source", source, "--kubeconfig",
                directory.file("kubeconfig-\(source)"), "--redis-url", redisURL,
                "--holder", holder, "--lease-ttl", String(options.leaseTTLSeconds), "--admin-address", "127.0.0.1:\(admin)",
                "--redis-timeout", "1", "--log-level", "info"
            ], outputFile: log)
        ingestors[holder] = Process(process: process, admin: admin, log: log)
    }

    func startReplica(port: Int) throws {
        let admin = try freeLoopbackPort()
        let debug = try freeLoopbackPort()
        let log = directory.file("xds-\(port).log")
        let process = try ChildProcess(
            Self.legation,
            [
                "xds-server", "--redis-url", redisURL, "--listen", "127.0.0.1:\(port)", "--admin-address", "127.0.0.1:\(admin)",
                "--debug-address", "127.0.0.1:\(debug)", "--identifier", "replica-\(port)", "--debounce-quiet", "10", "--debounce-max",
                "100",
                "--redis-timeout", "1", "--log-level", "info"
            ] + options.sources.flatMap { ["--source", $0] }, outputFile: log)
        replicas[port] = Process(process: process, admin: admin, log: log)
    }

    func killIngestor(_ holder: String, signal: Int32 = SIGKILL) async {
        guard let ingestor = ingestors.removeValue(forKey: holder) else { return }
        ingestor.process.kill(signal)
        _ = try? await ingestor.process.wait(timeout: .seconds(10))
    }

    func stopReplica(port: Int, signal: Int32 = SIGKILL) async {
        guard let replica = replicas.removeValue(forKey: port) else { return }
        replica.process.kill(signal)
        _ = try? await replica.process.wait(timeout: .seconds(10))
        replica.process.kill(SIGKILL)
    }

    func ingestorAdmin(_ holder: String) -> Int? { ingestors[holder]?.admin }
    var replicaAdmins: [Int] { replicas.values.map(\.admin) }

    // MARK: Sidecars and Envoy

    /// Starts the simulated sidecars (even ids state of the world, odd delta) against every replica.
    func startSidecars() {
        let servers = replicaPorts.map { (host: "127.0.0.1", port: $0) }
        for id in 0..<options.sidecars {
            let sidecar = SimulatedSidecar(id: id, delta: id % 2 == 1, trackContent: true)
            sidecars.append(sidecar)
            sidecarTasks.append(Task { await sidecar.run(servers: servers, zone: "east-zone-a", reconnect: true) })
        }
    }

    func startEnvoy() async throws {
        let binary = try #require(EnvoyProcess.binary, "envoy is not installed: run scripts/install-deps.sh --e2e")
        let adminPort = try freeLoopbackPort()
        let listenerPort = try freeLoopbackPort()
        envoy = try EnvoyProcess(
            binary: binary,
            bootstrap: EnvoyBootstrap(
                nodeID: "sidecar-fault", zone: "east-zone-a", xdsServers: replicaPorts.map { ("127.0.0.1", $0) },
                adminPort: adminPort, listener: (listenerPort, Self.echo)
            ).yaml,
            adminPort: adminPort, listenerPort: listenerPort, directory: directory)
    }

    /// Sidecars whose endpoints differ from the truth (0: all synced).
    func unsyncedSidecars() -> Int {
        let truth = truth
        return sidecars.filter { sidecar in sidecar.state.withLock { $0.endpoints != truth } }.count
    }

    /// Waits until every sidecar holds the truth; the time it took, or nil.
    func waitAllSynced(within limit: Duration) async -> Duration? {
        await measure(within: limit) { self.unsyncedSidecars() == 0 }
    }

    /// Changes pushed to sidecars at or after `since`: (assignment changes, endpoints removed, clusters removed in total).
    func pushed(since: ContinuousClock.Instant) -> (changes: Int, endpointsRemoved: Int, resends: Int) {
        var changes = 0
        var removed = 0
        var resends = 0
        for sidecar in sidecars {
            sidecar.state.withLock { state in
                for change in state.changes where change.at >= since {
                    changes += 1
                    removed += change.removed
                }
                resends += state.resends
            }
        }
        return (changes, removed, resends)
    }

    var clustersRemoved: Int { sidecars.reduce(0) { $0 + $1.state.withLock { $0.clustersRemoved } } }
    var resends: Int { sidecars.reduce(0) { $0 + $1.state.withLock { $0.resends } } }
    var connects: Int { sidecars.reduce(0) { $0 + $1.state.withLock { $0.connects } } }

    /// Envoy's hosts for a cluster, sorted ("address:port").
    func envoyHosts(_ cluster: String = FaultRig.echo) async -> [String] {
        guard let envoy, let (_, body) = try? await Self.get("http://127.0.0.1:\(envoy.adminPort)/clusters?format=json"),
            let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let statuses = json["cluster_statuses"] as? [[String: Any]],
            let status = statuses.first(where: { $0["name"] as? String == cluster })
        else { return [] }
        return (status["host_statuses"] as? [[String: Any]] ?? []).compactMap { host in
            guard let socket = (host["address"] as? [String: Any])?["socket_address"] as? [String: Any],
                let address = socket["address"] as? String
            else { return nil }
            return "\(address):\(socket["port_value"] as? Int ?? 0)"
        }.sorted()
    }

    /// Number of Envoy's clusters with at least one host (every service's cluster, once synced).
    func envoyClusterCount() async -> Int {
        guard let envoy, let (_, body) = try? await Self.get("http://127.0.0.1:\(envoy.adminPort)/clusters?format=json"),
            let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let statuses = json["cluster_statuses"] as? [[String: Any]]
        else { return 0 }
        return statuses.filter { ($0["host_statuses"] as? [Any])?.isEmpty == false }.count
    }

    /// Sends `count` requests through Envoy's listener; how many were answered 200 by an upstream.
    func routedRequests(_ count: Int) async -> Int {
        guard let envoy else { return 0 }
        var ok = 0
        for _ in 0..<count {
            if let (status, _) = try? await Self.get("http://127.0.0.1:\(envoy.listenerPort)/"), status == 200 { ok += 1 }
        }
        return ok
    }

    // MARK: Probes

    func ready(admin: Int) async -> Bool {
        (try? await Self.get("http://127.0.0.1:\(admin)/readyz"))?.status == 200
    }

    func replicasReady() async -> Bool {
        for replica in replicas.values where !(await ready(admin: replica.admin)) { return false }
        return true
    }

    /// A Prometheus sample's value from an admin port (`name{labels}` as printed), summed over matches.
    func metric(admin: Int, _ prefix: String) async -> Double {
        guard let (_, body) = try? await Self.get("http://127.0.0.1:\(admin)/metrics") else { return 0 }
        return body.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { Double($0.split(separator: " ").last ?? "") }
            .reduce(0, +)
    }

    /// Which ingestors hold their source's lease now.
    func leaders() async -> [String] {
        var result: [String] = []
        for (holder, ingestor) in ingestors where await metric(admin: ingestor.admin, "legation_ingestor_lease_held") == 1 {
            result.append(holder)
        }
        return result.sorted()
    }

    static func get(_ url: String) async throws -> (status: UInt, body: String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (response.status.code, String(buffer: body))
    }

    /// Polls `condition` every 20 ms; the time until it held, or nil after `limit`.
    func measure(within limit: Duration, _ condition: () async -> Bool) async -> Duration? {
        let started = ContinuousClock.now
        while ContinuousClock.now - started < limit {
            if await condition() { return ContinuousClock.now - started }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Everything up: replicas ready, every sidecar (and Envoy) synced. The time it took.
    func waitSteady(within limit: Duration = .seconds(60)) async throws -> Duration {
        let took = await measure(within: limit) {
            guard await self.replicasReady(), self.unsyncedSidecars() == 0 else { return false }
            guard self.envoy != nil else { return true }
            return await self.envoyHosts().count == self.truth[Self.echo]?.count
        }
        try #require(took != nil, "not steady within \(limit): \(unsyncedSidecars()) of \(sidecars.count) sidecars unsynced; \(logs())")
        return took!
    }

    /// The tail of every process's log, for a failure message.
    func logs(_ bytes: Int = 1500) -> String {
        let files = ingestors.map { ($0.key, $0.value.log) } + replicas.map { ("xds-\($0.key)", $0.value.log) }
        return files.map { name, file in
            "\n--- \(name):\n" + String(((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").suffix(bytes))
        }.joined() + apis.sorted { $0.key < $1.key }.map { "\n--- \($0.key)'s API server:\n" + $0.value.timeline(last: 30) }.joined()
    }

    func shutdown() async {
        sidecarTasks.forEach { $0.cancel() }
        for task in sidecarTasks { await task.value }
        await envoy?.stop()
        for holder in Array(ingestors.keys) { await killIngestor(holder, signal: SIGTERM) }
        for port in Array(replicas.keys) { await stopReplica(port: port, signal: SIGTERM) }
        for api in apis.values { await api.shutdown() }
        for upstream in upstreams { await upstream.close() }
        redis?.kill()
        for server in (sentinels?.servers ?? []) + (sentinels?.sentinels ?? []) + (cluster?.nodes ?? []) { server.kill() }
        directory.remove()
    }
}

extension Duration {
    var milliseconds: Int { Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000) }
}
