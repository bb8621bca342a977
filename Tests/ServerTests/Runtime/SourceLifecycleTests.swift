import EnvoyAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LegationTestSupport
import Server
import Shared
import Testing

/// What the server does as sources come, stop and go (design §4, §5), and what operators see of it.
@Suite struct SourceLifecycleTests {
    typealias F = XDSFixture

    @Test func aStoppedSourceIsFlaggedStaleButKeepsItsEndpoints() async throws {
        let store = InMemoryEndpointStore()
        let lease = try #require(await store.acquireLease(source: F.east, holder: "dying", ttl: .seconds(60)))
        let result = try await store.write([.put(F.set("web", ["10.0.0.1"]))], lease: lease)
        try await store.markSynced(generation: result.generation, serviceCount: 1, lease: lease)
        // A live writer: heartbeats every 100 ms, each valid for 600 ms.
        let heartbeats = Task {
            while !Task.isCancelled {
                try? await store.heartbeat(lease: lease, ttl: .milliseconds(600))
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        try await XDSServiceTests.withServer(store) { runtime, _ in
            #expect(await eventually(within: .seconds(20)) { runtime.hub.notReadyReason == nil })
            #expect(await eventually(within: .seconds(20)) { await runtime.pipeline.sourceStatuses.first?.heartbeat != nil })
            #expect(await runtime.pipeline.sourceStatuses.first?.stale == false)
            // The writer stops: no more heartbeats.
            heartbeats.cancel()
            #expect(await eventually(within: .seconds(20)) { await runtime.pipeline.sourceStatuses.first?.stale == true })
            #expect(runtime.hub.snapshot.resource(.endpoint, named: "default/web:http") != nil, "endpoints kept")
            let view = DebugViews.sources(await runtime.pipeline.sourceStatuses)
            #expect(view.map(\.stale) == [true])
            #expect(view.map(\.services) == [1])
        }
    }

    @Test func anExplicitlyRemovedSourceIsDrained() async throws {
        let store = InMemoryEndpointStore()
        let east = try await TestWriter.start(store, source: F.east)
        let west = try await TestWriter.start(store, source: F.west)
        try await east.publish([F.set("web", ["10.0.0.1"])])
        try await west.publish([F.set("web", ["10.1.0.1"], source: F.west), F.set("api", ["10.1.0.2"], source: F.west)])
        var options = XDSServiceTests.options(required: [F.east, F.west])
        options.follower.discoverSources = true
        try await XDSServiceTests.withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            #expect(await eventually { runtime.hub.snapshot.all(.cluster).count == 2 })
            await store.removeSource(F.west)
            #expect(
                await eventually {
                    runtime.hub.snapshot.all(.cluster).keys.sorted() == ["default/web:http"]
                })
            let web = try #require(runtime.hub.snapshot.resource(.endpoint, named: "default/web:http"))
            let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(serializedBytes: web.resource)
            #expect(assignment.endpoints.map(\.locality.subZone) == ["east"])
            #expect(await runtime.pipeline.sourceStatuses.first { $0.source == F.west }?.removed == true)
        }
    }

    @Test func debugViewsAndStatusShowWhatEachClientHolds() async throws {
        let store = InMemoryEndpointStore()
        let writer = try await TestWriter.start(store, source: F.east)
        try await writer.publish([F.set("web", ["10.0.0.1"])])
        try await XDSServiceTests.withServer(store) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            try await withADSStream(port: port) { stream in
                stream.send(request(.cluster, node: "sidecar-7"))
                let cds = try #require(try await stream.next())
                stream.ack(cds)
                stream.send(request(.endpoint, names: ["default/web:http"]))
                let eds = try #require(try await stream.next())
                stream.send(request(.endpoint, names: ["default/web:http"], version: "x", nonce: eds.nonce, nack: "endpoint rejected"))
                #expect(await eventually { runtime.hub.streams.first?.debug.type(.endpoint)?.nacks == 1 })
                let clients = DebugViews.clients(runtime.hub)
                #expect(clients.count == 1)
                let client = try #require(clients.first)
                #expect(client.node?.id == "sidecar-7")
                #expect(client.types.map(\.type) == ["cds", "eds"])
                #expect(client.types[0].wildcard && client.types[0].ackedVersion == cds.versionInfo)
                #expect(client.types[1].lastNack == "endpoint rejected")
                let json = String(decoding: DebugViews.json(clients), as: UTF8.self)
                #expect(json.contains(#""lastNack" : "endpoint rejected""#))
                let decoded = try JSONDecoder().decode([DebugViews.ClientView].self, from: Data(json.utf8))
                #expect(decoded == clients)
                let resources = DebugViews.resources(runtime.hub.snapshot)
                #expect(resources.map(\.name) == ["default/web:http", "default/web:http"])
                #expect(resources.map(\.type) == ["cds", "eds"])
            }
        }
    }

    struct RawSerializer: MessageSerializer {
        func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    }

    @Test func garbageBytesGetAStatusAndTheServerGoesOn() async throws {
        let store = InMemoryEndpointStore()
        let writer = try await TestWriter.start(store, source: F.east)
        try await writer.publish([F.set("web", ["10.0.0.1"])])
        try await XDSServiceTests.withServer(store) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            let error = await #expect(throws: RPCError.self) {
                try await withGRPCClient(
                    transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
                ) { client in
                    try await client.bidirectionalStreaming(
                        request: StreamingClientRequest<[UInt8]> { writer in try await writer.write([0xff, 0xff, 0xff, 0x0f, 0x01]) },
                        descriptor: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method.StreamAggregatedResources.descriptor,
                        serializer: RawSerializer(),
                        deserializer: ProtobufDeserializer<Envoy_Service_Discovery_V3_DiscoveryResponse>(),
                        options: .defaults
                    ) { response in
                        for try await _ in response.messages {}
                    }
                }
            }
            #expect(error?.code == .internalError || error?.code == .invalidArgument, "\(String(describing: error))")
            try await withADSStream(port: port) { stream in
                stream.send(request(.cluster))
                let response = try await stream.next()
                #expect(response?.resources.count == 1)
            }
        }
    }

    @Test func theStandaloneEndpointServiceServesOneType() async throws {
        let store = InMemoryEndpointStore()
        let writer = try await TestWriter.start(store, source: F.east)
        try await writer.publish([F.set("web", ["10.0.0.1"])])
        try await XDSServiceTests.withServer(store) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            try await withGRPCClient(
                transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext)
            ) { client in
                let eds = Envoy_Service_Endpoint_V3_EndpointDiscoveryService.Client(wrapping: client)
                let response = try await eds.streamEndpoints(
                    request: StreamingClientRequest { writer in
                        try await writer.write(request(nil, names: ["default/web:http"]))
                    }
                ) { response in
                    var iterator = response.messages.makeAsyncIterator()
                    return try await iterator.next()
                }
                #expect(response?.typeURL == ResourceType.endpoint.typeURL)
                #expect(response?.resources.count == 1)
            }
        }
    }
}
