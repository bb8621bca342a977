import EnvoyAPI
import GRPCCore
import LegationTestSupport
import LocalProcesses
import Logging
import Server
import Shared
import Testing

/// The server over real gRPC on loopback, fed by a store: store events in, exact responses out. The
/// tests that speak gRPC run against both transports (the NIO listener and grpc-swift-2's server).
@Suite struct XDSServiceTests {
    typealias F = XDSFixture

    static func options(
        required: [SourceCluster] = [F.east], maximumStreams: Int = 100, transport: ServingOptions.Transport = .nio
    ) -> XDSServerRuntime.Options {
        var options = XDSServerRuntime.Options()
        options.serving.transport = transport
        options.serving.host = "127.0.0.1"
        options.serving.port = 0
        options.serving.closeGracePeriod = .milliseconds(200)
        options.pipeline.requiredSources = Set(required)
        options.pipeline.readinessTimeout = .seconds(60)
        options.pipeline.debounce = DebounceOptions(quiet: .milliseconds(5), maximum: .milliseconds(20))
        options.follower.pollWait = .milliseconds(100)
        options.follower.discoveryInterval = .milliseconds(200)
        options.heartbeatCheckInterval = .milliseconds(100)
        options.service.maximumStreams = maximumStreams
        options.service.controlPlaneIdentifier = "legation-test"
        return options
    }

    /// Runs a server on an in-memory store for the duration of `body`.
    static func withServer<T: Sendable>(
        _ store: InMemoryEndpointStore, options: XDSServerRuntime.Options = options(),
        _ body: @escaping @Sendable (XDSServerRuntime, Int) async throws -> T
    ) async throws -> T {
        let runtime = XDSServerRuntime(reader: store, options: options, logger: .quiet())
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await runtime.run()
                return nil
            }
            guard let port = await runtime.port() else { throw XDSError(.unavailable, "server did not bind") }
            let result = try await body(runtime, port)
            group.cancelAll()
            return result
        }
    }

    /// A large mesh in east: `services` services (`svc-0`…) of the same `endpoints` addresses each.
    struct Mesh: Sendable {
        let writer: TestWriter
        let services: [String]
        let addresses: [String]
        /// The services' cluster names, sorted.
        var names: [String] { services.map { "default/\($0):http" }.sorted() }
    }

    /// A server on an in-memory store holding a `Mesh`, ready before `body` runs.
    static func withMeshServer<T: Sendable>(
        services: Int, endpoints: Int, _ body: @escaping @Sendable (XDSServerRuntime, Int, Mesh) async throws -> T
    ) async throws -> T {
        let store = InMemoryEndpointStore()
        let mesh = Mesh(
            writer: try await TestWriter.start(store, source: F.east), services: (0..<services).map { "svc-\($0)" },
            addresses: (0..<endpoints).map { "10.1.\($0 / 200).\($0 % 200 + 1)" })
        try await mesh.writer.publish(mesh.services.map { F.set($0, mesh.addresses) })
        return try await withServer(store) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            return try await body(runtime, port, mesh)
        }
    }

    /// A server on an in-memory store that holds east's `web`, ready before `body` runs (given the
    /// writer, to publish more).
    static func withReadyServer<T: Sendable>(
        options: XDSServerRuntime.Options, _ body: @escaping @Sendable (XDSServerRuntime, Int, TestWriter) async throws -> T
    ) async throws -> T {
        let store = InMemoryEndpointStore()
        let writer = try await TestWriter.start(store, source: F.east)
        try await writer.publish([F.set("web", ["10.0.0.1"])])
        return try await withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            return try await body(runtime, port, writer)
        }
    }

    /// A reconnect storm of thousands of sidecars must not overflow the accept queue (NIO's is 128):
    /// `ss` shows the listening socket's backlog as Send-Q.
    @Test(arguments: ServingOptions.Transport.allCases) func theXDSListenerQueuesAReconnectStorm(transport: ServingOptions.Transport)
        async throws
    {
        let somaxconn =
            Int(
                (try? String(contentsOfFile: "/proc/sys/net/core/somaxconn", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 4096
        try await Self.withServer(InMemoryEndpointStore(), options: Self.options(transport: transport)) { _, port in
            let directory = try TemporaryDirectory(prefix: "legation-ss")
            defer { directory.remove() }
            let status = try await ChildProcess("/usr/bin/ss", ["-ltnH", "sport = :\(port)"], outputFile: directory.file("out")).wait(
                timeout: .seconds(10))
            let line = try String(contentsOfFile: directory.file("out"), encoding: .utf8)
            let fields = line.split(whereSeparator: \.isWhitespace)
            #expect(status == 0 && fields.count >= 4, "ss: \(line)")
            #expect(fields.count >= 3 && Int(fields[2]) == min(4096, somaxconn), "backlog (Send-Q) in: \(line)")
        }
    }

    @Test(arguments: ServingOptions.Transport.allCases) func envoyLikeClientGetsClustersThenEndpointsThenUpdates(
        transport: ServingOptions.Transport
    ) async throws {
        try await Self.withReadyServer(options: Self.options(transport: transport)) { runtime, port, writer in
            try await withADSStream(port: port) { stream in
                stream.send(request(.cluster))
                let cds = try #require(try await stream.next())
                #expect(cds.typeURL == ResourceType.cluster.typeURL)
                #expect(cds.resources.count == 1)
                #expect(cds.controlPlane.identifier == "legation-test")
                stream.ack(cds)
                stream.send(request(.endpoint, names: ["default/web:http"]))
                let eds = try #require(try await stream.next())
                let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: eds.resources[0])
                #expect(assignment.endpoints.flatMap(\.lbEndpoints).map(\.endpoint.address.socketAddress.address) == ["10.0.0.1"])
                #expect(assignment.endpoints[0].locality.subZone == "east")
                stream.ack(eds, names: ["default/web:http"])
                #expect(await stream.isQuiet(), "nothing without a change")

                // A pod starts terminating in the source: it becomes DRAINING.
                try await writer.publish([
                    F.set("web", ["10.0.0.1"], conditions: .init(ready: false, serving: true, terminating: true))
                ])
                let push = try #require(try await stream.next())
                #expect(push.typeURL == ResourceType.endpoint.typeURL)
                let drained = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: push.resources[0])
                #expect(drained.endpoints[0].lbEndpoints[0].healthStatus == .draining)
                stream.ack(push, names: ["default/web:http"])
            }
            let clients = runtime.hub.streams
            #expect(clients.isEmpty || clients.allSatisfy { $0.kind == .ads })
        }
    }

    @Test(arguments: ServingOptions.Transport.allCases) func notReadyRefusesStreamsWithUnavailable(transport: ServingOptions.Transport)
        async throws
    {
        let store = InMemoryEndpointStore()
        try await Self.withServer(store, options: Self.options(required: [F.west], transport: transport)) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason?.contains("west") == true })
            let error = await #expect(throws: RPCError.self) {
                try await withADSStream(port: port) { stream in
                    stream.send(request(.cluster))
                    _ = try await stream.next()
                }
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("canary of west") == true)
        }
    }

    @Test(arguments: ServingOptions.Transport.allCases) func streamsBeyondTheLimitAreRefusedAndOthersKeepWorking(
        transport: ServingOptions.Transport
    ) async throws {
        try await Self.withReadyServer(options: Self.options(maximumStreams: 1, transport: transport)) { runtime, port, writer in
            try await withADSStream(port: port) { first in
                first.send(request(.cluster))
                _ = try #require(try await first.next())
                let error = await #expect(throws: RPCError.self) {
                    try await withADSStream(port: port) { second in
                        second.send(request(.cluster))
                        _ = try await second.next()
                    }
                }
                #expect(error?.code == .resourceExhausted)
                // The first stream is unaffected; it never ACKed, and still gets nothing new until it does.
                try await writer.publish([F.set("api", ["10.0.0.2"])])
                #expect(await first.isQuiet())
            }
        }
    }

    @Test(arguments: ServingOptions.Transport.allCases) func protocolErrorsEndOnlyTheirStream(transport: ServingOptions.Transport)
        async throws
    {
        try await Self.withReadyServer(options: Self.options(transport: transport)) { runtime, port, writer in
            let bogus = {
                var bogus = request(.cluster)
                bogus.typeURL = "type.googleapis.com/not.a.Type"
                return bogus
            }()
            let unknown = await #expect(throws: RPCError.self) {
                try await withADSStream(port: port) { stream in
                    stream.send(bogus)
                    _ = try await stream.next()
                }
            }
            #expect(unknown?.code == .invalidArgument)
            #expect(unknown?.message.contains("not.a.Type") == true)

            let absurd = await #expect(throws: RPCError.self) {
                try await withADSStream(port: port) { stream in
                    stream.send(request(.endpoint, names: [String(repeating: "n", count: 100_000)]))
                    _ = try await stream.next()
                }
            }
            #expect(absurd?.code == .invalidArgument)

            // The server still serves.
            try await withADSStream(port: port) { stream in
                stream.send(request(.cluster))
                let response = try await stream.next()
                #expect(response?.resources.count == 1)
            }
        }
    }

    @Test(arguments: ServingOptions.Transport.allCases) func shutdownEndsStreamsWithUnavailable(transport: ServingOptions.Transport)
        async throws
    {
        try await Self.withReadyServer(options: Self.options(transport: transport)) { runtime, port, writer in
            let error = await #expect(throws: RPCError.self) {
                try await withADSStream(port: port) { stream in
                    stream.send(request(.cluster))
                    _ = try await stream.next()
                    runtime.hub.shutdown()
                    _ = try await stream.next()
                }
            }
            #expect(error?.code == .unavailable)
        }
    }

    @Test(arguments: ServingOptions.Transport.allCases) func connectionsAreClosedAtTheirMaximumAge(transport: ServingOptions.Transport)
        async throws
    {
        var options = Self.options(transport: transport)
        options.serving.maximumConnectionAge = .milliseconds(500)
        options.serving.connectionAgeJitter = 0.2
        options.serving.closeGracePeriod = .milliseconds(200)
        try await Self.withReadyServer(options: options) { runtime, port, writer in
            let started = ContinuousClock.now
            await #expect(throws: RPCError.self) {
                try await withADSStream(port: port) { stream in
                    stream.send(request(.cluster))
                    _ = try #require(try await stream.next())
                    while try await stream.next(timeout: .seconds(30)) != nil {}
                }
            }
            let lifetime = ContinuousClock.now - started
            // At least the (jittered) age; the upper bound is loose for loaded machines: without a maximum
            // age the stream would never end.
            #expect(lifetime >= .milliseconds(400) && lifetime < .seconds(25), "closed after \(lifetime)")
        }
    }
}
