import AdminHTTP
import AsyncHTTPClient
import Foundation
import LocalProcesses
import Logging
import NIOCore
import Prometheus
import Server
import Shared

/// The demo's serving half: an xds-server on the demo's store, a real Envoy bootstrapped against it, and
/// the echo "pods" it routes to. Everything on loopback; stopped by `stop()`.
final class DemoMesh: Sendable {
    static let echoCluster = "default/echo:http"

    let runtime: XDSServerRuntime
    let xdsPort: Int
    let adminPort: Int
    let envoyAdminPort: Int
    let envoyListenerPort: Int
    let envoyLog: String
    private let upstreams: [AdminServer]
    private let admin: AdminServer
    private let envoy: ChildProcess
    private let serving: Task<Void, any Error>

    /// Starts the echo pods on `echoPort` (0: pick one; the chosen port is `echoPort(of:)`).
    static func startUpstreams(port: Int) async throws -> [AdminServer] {
        var servers: [AdminServer] = []
        var port = port
        for (name, address) in DemoData.echoPods {
            let server = try await AdminServer.start(
                host: address, port: port, registry: PrometheusCollectorRegistry(), ready: { nil },
                routes: ["/": { AdminServer.Response(body: "\(name)\n") }])
            port = server.port
            servers.append(server)
        }
        return servers
    }

    /// Where the Envoy binary is: `--envoy`, `LEGATION_ENVOY`, `.venv-e2e/bin/envoy`, or `envoy` on PATH.
    static func findEnvoy(_ explicit: String?) -> String? {
        var candidates = [
            explicit, ProcessInfo.processInfo.environment["LEGATION_ENVOY"],
            FileManager.default.currentDirectoryPath + "/.venv-e2e/bin/envoy"
        ]
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            candidates.append("\(directory)/envoy")
        }
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(
        store: any EndpointStoreReader, upstreams: [AdminServer], envoyBinary: String, directory: String,
        registry: PrometheusCollectorRegistry, logger: Logger
    ) async throws {
        self.upstreams = upstreams
        var options = XDSServerRuntime.Options()
        options.serving.host = "127.0.0.1"
        options.serving.port = 0
        options.serving.closeGracePeriod = .milliseconds(200)
        options.pipeline.requiredSources = [try SourceCluster("east"), try SourceCluster("west")]
        options.follower.pollWait = .milliseconds(200)
        options.follower.discoveryInterval = .milliseconds(200)
        options.service.controlPlaneIdentifier = "legation-demo"
        let runtime = XDSServerRuntime(reader: store, options: options, logger: logger)
        self.runtime = runtime
        serving = Task { try await runtime.run() }
        guard let port = await runtime.port() else { throw CommandFailure("the xds-server did not start") }
        xdsPort = port
        admin = try await XDSServerRunner.startAdmin(runtime: runtime, host: "127.0.0.1", port: 0, registry: registry, includeDebug: true)
        adminPort = admin.port

        envoyAdminPort = try Self.freePort()
        envoyListenerPort = try Self.freePort()
        let bootstrap = EnvoyBootstrap(
            nodeID: "demo-sidecar", nodeCluster: "demo", zone: Self.sidecarZone, xdsServers: [("127.0.0.1", xdsPort)],
            adminPort: envoyAdminPort, listener: (envoyListenerPort, Self.echoCluster))
        let config = directory + "/envoy.yaml"
        try bootstrap.yaml.write(toFile: config, atomically: true, encoding: .utf8)
        envoyLog = directory + "/envoy.log"
        envoy = try ChildProcess(
            envoyBinary, ["-c", config, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warning"], outputFile: envoyLog,
            ownProcessGroup: false)
    }

    /// Where the demo's sidecar is: east's first zone.
    static let sidecarZone = "us-east-1a"

    /// Who answers `count` requests sent through Envoy's listener, by upstream name.
    func requestsThroughEnvoy(_ count: Int = 12) async -> [String: Int] {
        var answers: [String: Int] = [:]
        for _ in 0..<count {
            guard
                let response = try? await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(envoyListenerPort)/"), timeout: .seconds(2)),
                response.status == .ok, let body = try? await response.body.collect(upTo: 1 << 16)
            else { continue }
            answers[String(buffer: body).trimmingCharacters(in: .whitespacesAndNewlines), default: 0] += 1
        }
        return answers
    }

    /// Envoy's own view of the echo cluster (its admin `/clusters`): address → health and priority.
    func envoyHosts() async -> [String: (health: String, priority: Int)] {
        guard
            let response = try? await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(envoyAdminPort)/clusters?format=json"), timeout: .seconds(2)),
            let body = try? await response.body.collect(upTo: 16 << 20),
            let json = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let cluster = (json["cluster_statuses"] as? [[String: Any]])?.first(where: { $0["name"] as? String == Self.echoCluster })
        else { return [:] }
        var hosts: [String: (health: String, priority: Int)] = [:]
        for host in cluster["host_statuses"] as? [[String: Any]] ?? [] {
            guard let address = ((host["address"] as? [String: Any])?["socket_address"] as? [String: Any])?["address"] as? String else {
                continue
            }
            hosts[address] = (
                (host["health_status"] as? [String: Any])?["eds_health_status"] as? String ?? "HEALTHY", host["priority"] as? Int ?? 0
            )
        }
        return hosts
    }

    func waitUntil(timeout: Duration = .seconds(30), _ condition: () async -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    static func render(_ answers: [String: Int]) -> String {
        answers.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }

    func renderHosts(_ hosts: [String: (health: String, priority: Int)]) -> String {
        let names = Dictionary(uniqueKeysWithValues: DemoData.echoPods.map { ($0.1, $0.0) })
        return hosts.sorted { $0.key < $1.key }.map { address, host in
            "    \((address + " (" + (names[address] ?? "?") + ")").padding(toLength: 26, withPad: " ", startingAt: 0)) priority \(host.priority)  \(host.health)"
        }.joined(separator: "\n")
    }

    func stop() async {
        envoy.kill(SIGTERM)
        if (try? await envoy.wait(timeout: .seconds(5))) == nil { envoy.kill() }
        runtime.hub.shutdown()
        serving.cancel()
        await admin.close()
        for upstream in upstreams { await upstream.close() }
    }

    private static func freePort() throws -> Int {
        guard let port = freeLoopbackPortNumber() else { throw CommandFailure("no free loopback port") }
        return port
    }
}
