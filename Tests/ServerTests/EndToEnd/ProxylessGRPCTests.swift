import EnvoyAPI
import Foundation
import LegationTestSupport
import LocalProcesses
import RedisStore
import Server
import Shared
import Testing

/// A real proxyless gRPC client (Python grpcio, `xds:///` target) resolving through Legation: listener →
/// route → cluster → endpoints of two source clusters; a client that says where it is calls its own zone
/// and fails over to the other cluster when its zone's pod terminates.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct ProxylessGRPCTests {
    static let python = Repository.root.appendingPathComponent(".venv-e2e/bin/python").path
    static let script = Repository.root.appendingPathComponent("scripts/e2e/proxyless.py").path

    struct Answers: Decodable {
        var answers: [String: Int]
        var errors: [String]
    }

    static func call(_ target: String, count: Int, bootstrap: String, directory: TemporaryDirectory) async throws -> Answers {
        let output = directory.file("call-\(UInt32.random(in: 0...UInt32.max)).json")
        let process = try ChildProcess(
            "/usr/bin/env", ["GRPC_XDS_BOOTSTRAP=\(bootstrap)", python, script, "call", target, String(count)], outputFile: output)
        _ = try await process.wait(timeout: .seconds(90))
        let text = try String(contentsOfFile: output, encoding: .utf8)
        guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else {
            throw TestSupportError("client printed: \(text.suffix(2000))")
        }
        return try JSONDecoder().decode(Answers.self, from: Data(line.utf8))
    }

    @Test func aGRPCClientCallsPodsOfBothClustersThroughXDS() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python), "run scripts/install-deps.sh --e2e")
        let directory = try TemporaryDirectory(prefix: "legation-proxyless")
        defer { directory.remove() }
        let redis = try await RedisServer()
        let store = RedisEndpointStore(try redis.configuration(), logger: .quiet())
        let podPort = try freeLoopbackPort()
        var servers: [ChildProcess] = []
        for (name, host) in [("east-0", "127.0.0.2"), ("west-0", "127.0.0.4")] {
            servers.append(
                try ChildProcess(
                    Self.python, [Self.script, "serve", name, host, String(podPort)], outputFile: directory.file("\(name).log")))
        }
        // Python takes a while to start: a pod that is not listening yet would put its locality in backoff.
        for name in ["east-0", "west-0"] {
            #expect(
                await eventually(within: .seconds(30)) {
                    ((try? String(contentsOfFile: directory.file("\(name).log"), encoding: .utf8)) ?? "").contains("serving")
                })
        }
        let east = try await EnvoyEndToEndTests.SourceRig(name: "east", store: store)
        let west = try await EnvoyEndToEndTests.SourceRig(name: "west", store: store)
        try east.publish(port: podPort, pods: [("127.0.0.2", true, true, false)], portName: "grpc", servicePort: 9090, appProtocol: "grpc")
        try west.publish(port: podPort, pods: [("127.0.0.4", true, true, false)], portName: "grpc", servicePort: 9090, appProtocol: "grpc")
        let replica = try await EnvoyEndToEndTests.startReplica(store, identifier: "replica-grpc")
        #expect(await eventually(within: .seconds(20)) { replica.runtime.hub.notReadyReason == nil })
        #expect(await eventually { replica.runtime.hub.snapshot.resource(.listener, named: "echo.default:9090") != nil })
        // Ready means each source's canary is in; a slice applied after an ingestor's first list may come
        // later. Without both pods in the assignment, the client's first answer could name east only
        // (it once did: 20 of 20 calls to east-0, no errors).
        #expect(
            await eventually(within: .seconds(20)) {
                guard let resource = replica.runtime.hub.snapshot.resource(.endpoint, named: "default/echo:grpc"),
                    let assignment = try? Envoy_Config_Endpoint_V3_ClusterLoadAssignment(serializedBytes: resource.resource)
                else { return false }
                return Set(assignment.endpoints.flatMap(\.lbEndpoints).map(\.endpoint.address.socketAddress.address)) == [
                    "127.0.0.2", "127.0.0.4"
                ]
            })

        // A client that says nothing of where it is: both clusters at priority 0.
        let anywhere = try directory.write(
            "bootstrap.json",
            """
            {"xds_servers": [{"server_uri": "127.0.0.1:\(replica.port)", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
             "node": {"id": "proxyless-1", "cluster": "e2e"}}
            """)
        let both = try await Self.call("xds:///echo.default:9090", count: 20, bootstrap: anywhere, directory: directory)
        #expect(Set(both.answers.keys) == ["east-0", "west-0"], "\(both)")
        #expect(both.answers.values.reduce(0, +) == 20)

        // A client in east's zone: its own zone is priority 0, and every call stays there.
        let inEast = try directory.write(
            "bootstrap-east.json",
            """
            {"xds_servers": [{"server_uri": "127.0.0.1:\(replica.port)", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
             "node": {"id": "proxyless-2", "cluster": "e2e", "locality": {"zone": "east-zone-a", "sub_zone": "east"}}}
            """)
        let local = try await Self.call("xds:///echo.default:9090", count: 20, bootstrap: inEast, directory: directory)
        #expect(local.answers == ["east-0": 20], "\(local)")
        print(
            "locality: proxyless gRPC local share, zone healthy: \(local.answers["east-0"] ?? 0) of \(local.answers.values.reduce(0, +)) calls"
        )

        // The east pod terminates: both clients stop calling it; the placed one fails over to west.
        let before = replica.runtime.hub.snapshot.resource(.endpoint, named: "default/echo:grpc")?.version
        try east.publish(port: podPort, pods: [("127.0.0.2", false, true, true)], portName: "grpc", servicePort: 9090, appProtocol: "grpc")
        #expect(await eventually { replica.runtime.hub.snapshot.resource(.endpoint, named: "default/echo:grpc")?.version != before })
        try await Task.sleep(for: .milliseconds(300))
        for bootstrap in [anywhere, inEast] {
            let westOnly = try await Self.call("xds:///echo.default:9090", count: 10, bootstrap: bootstrap, directory: directory)
            #expect(westOnly.answers == ["west-0": 10], "\(westOnly)")
        }

        let clients = DebugViews.clients(replica.runtime.hub)
        #expect(clients.allSatisfy { $0.types.allSatisfy { $0.nacks == 0 } }, "grpc NACKed nothing")

        replica.runtime.hub.shutdown()
        replica.task.cancel()
        for server in servers { server.kill() }
        await east.stop()
        await west.stop()
        await store.close()
        redis.kill()
    }
}
