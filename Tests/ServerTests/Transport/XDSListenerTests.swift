import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import LegationTestSupport
import NIOCore
import Shared
import SwiftProtobuf
import Testing

@testable import Server

/// A message sent and received as raw bytes: requests the server must refuse, responses read as they are.
struct RawBytesSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
}

struct RawBytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

/// The NIO listener's own gRPC: what it refuses and how, and the request reader that skips what ACKs
/// repeat. (XDSServiceTests, the Envoy, TLS and proxyless tests run the listener end to end.)
@Suite struct XDSListenerTests {
    typealias F = XDSFixture

    /// Sends `messages` as raw bytes on `path`'s stream and returns the status the stream ends with.
    static func status(port: Int, service: String, method: String, messages: [[UInt8]]) async throws -> RPCError? {
        try await withGRPCClient(transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext))
        {
            client in
            do {
                try await client.bidirectionalStreaming(
                    request: StreamingClientRequest(of: [UInt8].self) { writer in
                        for message in messages { try await writer.write(message) }
                        try await Task.sleep(for: .seconds(5))  // the server ends the stream before this
                    },
                    descriptor: MethodDescriptor(fullyQualifiedService: service, method: method),
                    serializer: RawBytesSerializer(), deserializer: RawBytesDeserializer(), options: .defaults
                ) { response in
                    for try await _ in response.messages {}
                }
                return nil
            } catch let error as RPCError {
                return error
            }
        }
    }

    static let ads = "envoy.service.discovery.v3.AggregatedDiscoveryService"

    @Test func anUnknownMethodIsUnimplementedAndBadBytesEndOnlyTheirStream() async throws {
        let store = InMemoryEndpointStore()
        let writer = try await TestWriter.start(store, source: F.east)
        try await writer.publish([F.set("web", ["10.0.0.1"])])
        var options = XDSServiceTests.options()
        options.serving.maximumRequestBytes = 64 * 1024
        try await XDSServiceTests.withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })

            let unknown = try await Self.status(port: port, service: "legation.NotAService", method: "Nope", messages: [])
            #expect(unknown?.code == .unimplemented)
            #expect(unknown?.message.contains("/legation.NotAService/Nope") == true)

            let garbage = try await Self.status(
                port: port, service: Self.ads, method: "StreamAggregatedResources", messages: [[0xff, 0xff, 0xff]])
            #expect(garbage?.code == .invalidArgument)
            #expect(garbage?.message.contains("DiscoveryRequest") == true)

            // A message above grpc.maxRequestBytes is refused as soon as its length is read, naming both sizes.
            var huge = request(.cluster)
            huge.resourceNames = Array(repeating: String(repeating: "n", count: 1000), count: 100)
            let big = try await Self.status(
                port: port, service: Self.ads, method: "StreamAggregatedResources", messages: [try huge.serializedBytes()])
            #expect(big?.code == .resourceExhausted)
            #expect(big?.message.contains("65536") == true && big?.message.contains("grpc.maxRequestBytes") == true)

            #expect(await eventually { runtime.hub.streams.isEmpty }, "refused streams are not left registered")
            try await withADSStream(port: port) { stream in
                stream.send(request(.cluster))
                let response = try await stream.next()
                #expect(response?.resources.count == 1, "the server still serves")
            }
        }
    }

    @Test func framingRefusesCompressedAndOversizedMessagesAndKeepsPartialOnes() throws {
        var deframer = GRPCWire.Deframer(maximumBytes: 10)
        deframer.append(ByteBuffer(bytes: [0, 0, 0, 0, 3, 1, 2]))
        #expect(try deframer.next() == nil, "3 bytes announced, 2 arrived")
        #expect(deframer.pendingBytes == 7)
        deframer.append(ByteBuffer(bytes: [3, 0, 0, 0, 0, 1, 9]))
        #expect(try deframer.next() == ByteBuffer(bytes: [1, 2, 3]))
        #expect(try deframer.next() == ByteBuffer(bytes: [9]))
        #expect(try deframer.next() == nil && deframer.pendingBytes == 0)

        deframer.append(ByteBuffer(bytes: [0, 0, 0, 0, 11]))
        #expect(throws: GRPCWire.FramingError.self) { try deframer.next() }
        var compressed = GRPCWire.Deframer(maximumBytes: 10)
        compressed.append(ByteBuffer(bytes: [1, 0, 0, 0, 1, 7]))
        #expect { try compressed.next() } throws: { ($0 as? GRPCWire.FramingError)?.status == .internal }

        #expect(GRPCWire.percentEncoded("naïve 100% \n") == "na%C3%AFve 100%25 %0A")
    }

    /// A block is made once for the same resources in the same order, and never serves other versions.
    @Test func sharedBlocksAreFoundByTheIdentityOfTheirResources() throws {
        let blocks = SharedBlocks(capacity: 2)
        func resources(_ version: Int) -> [EncodedResource] {
            (0..<40).map { EncodedResource(type: .endpoint, name: "r\($0)", resource: [UInt8(version), UInt8($0)]) }
        }
        let first = resources(1)
        let second = resources(2)
        func block(_ resources: [EncodedResource]) -> ByteBuffer {
            blocks.block(delta: false, resources: resources, fields: resources.map(\.responseFieldBuffer))
        }
        func address(_ buffer: ByteBuffer) -> UnsafeRawPointer? { buffer.withUnsafeReadableBytes { $0.baseAddress } }
        let made = block(first)
        #expect(made == ByteBuffer(bytes: first.flatMap(\.responseField)), "the fields, concatenated in order")
        #expect(address(block(first)) == address(made), "the same resources: the same bytes, not a copy")
        let other = block(second)
        #expect(other == ByteBuffer(bytes: second.flatMap(\.responseField)), "other versions of the same names: their own block")
        #expect(address(block(Array(first.reversed()))) != address(made), "another order: another block")
        #expect(
            blocks.block(delta: true, resources: first, fields: first.map(\.deltaResponseFieldBuffer))
                == ByteBuffer(bytes: first.flatMap(\.deltaResponseField)))
    }

    /// Requests read with the node and repeated names skipped decode to what a plain decoder makes of
    /// them, apart from the node after the first request.
    @Test func theRequestReaderMatchesPlainDecoding() throws {
        var generator = SystemRandomNumberGenerator()
        for round in 0..<50 {
            var reader = RequestReader<SotWStreamStateMachine>()
            var names = (0..<Int.random(in: 0...6, using: &generator)).map { "default/svc-\($0)-\(round):http" }
            for index in 0..<8 {
                var message = request(
                    .endpoint, names: names, node: index == 0 || Bool.random(using: &generator) ? "sidecar-\(round)" : nil)
                message.versionInfo = String(index)
                message.responseNonce = String(index * 7)
                if Bool.random(using: &generator) { message.errorDetail = .with { $0.message = "no \(index)" } }
                let bytes: [UInt8] = try message.serializedBytes()
                let read = try reader.read(bytes)
                var expected = message
                if index > 0 { expected.clearNode() }
                #expect(read == expected, "round \(round), request \(index)")
                if Int.random(in: 0..<3, using: &generator) == 0 { names.append("default/new-\(index):http") }
                if Int.random(in: 0..<4, using: &generator) == 0, !names.isEmpty { names.removeFirst() }
            }
        }
        // Not well-formed: the decoder's own error.
        var reader = RequestReader<DeltaStreamStateMachine>()
        #expect(throws: (any Error).self) { try reader.read([0x0a, 0x05, 0x01]) }
        // A names field of the wrong wire type is not taken for the last (empty) name: the decoder sees it
        // (and, as SwiftProtobuf does, keeps it as an unknown field).
        var sotw = RequestReader<SotWStreamStateMachine>()
        _ = try sotw.read(try request(.endpoint, names: [""]).serializedBytes() as [UInt8])
        var malformed: [UInt8] = try request(.endpoint, names: [], node: nil).serializedBytes()
        malformed += [0x18, 0x00]  // field 3 (resource_names) as a varint
        let plain = try Envoy_Service_Discovery_V3_DiscoveryRequest(serializedBytes: malformed)
        #expect(plain.resourceNames.isEmpty)
        #expect(try sotw.read(malformed) == plain)
    }

    /// Names a request reader decodes are the snapshot's own strings where it has them (one copy per
    /// server, not one per stream), and an ACK repeating them gets the very same array back.
    @Test func theRequestReaderSharesTheSnapshotsNames() throws {
        var fixture = XDSFixture()
        fixture.publish([XDSFixture.set("web", ["10.0.0.1"])])
        let snapshot = fixture.snapshot
        func storage(_ name: String) -> UnsafeRawPointer? {
            name.utf8.withContiguousStorageIfAvailable { UnsafeRawPointer($0.baseAddress) } ?? nil
        }
        func storage(_ names: [String]) -> UnsafeRawPointer? { names.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        let held = snapshot.all(.endpoint).keys.first { $0 == "default/web:http" }!

        var reader = RequestReader<SotWStreamStateMachine>()
        let names = ["default/web:http", "default/absent-but-long-enough:http"]
        let first = try reader.read(try request(.endpoint, names: names).serializedBytes() as [UInt8], snapshot: snapshot)
        #expect(first.resourceNames == names)
        #expect(storage(first.resourceNames[0]) == storage(held), "the snapshot's string, not a copy")
        #expect(storage(first.resourceNames[1]) != nil && storage(first.resourceNames[1]) != storage(held))
        let ack = try reader.read(
            try request(.endpoint, names: names, version: "1", nonce: "1").serializedBytes() as [UInt8], snapshot: snapshot)
        #expect(storage(ack.resourceNames) == storage(first.resourceNames), "the same names: the same array")
        let other = try reader.read(
            try request(.endpoint, names: [names[0], "default/absent-but-long-enougX:http"]).serializedBytes() as [UInt8])
        #expect(other.resourceNames == [names[0], "default/absent-but-long-enougX:http"], "a name of the same length that differs")

        var delta = RequestReader<DeltaStreamStateMachine>()
        var subscribe = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        subscribe.typeURL = ResourceType.endpoint.typeURL
        subscribe.resourceNamesSubscribe = ["default/web:http"]
        let read = try delta.read(try subscribe.serializedBytes() as [UInt8], snapshot: snapshot)
        #expect(storage(read.resourceNamesSubscribe[0]) == storage(held))
    }

    /// A stream subscribed to every name of a type, in any order, holds the snapshot's own array of them
    /// (state of the world and delta) rather than an array of its own; a request naming them in order
    /// is read as that array itself.
    @Test func aSubscriptionToEveryNameSharesTheSnapshotsArray() throws {
        var fixture = XDSFixture()
        fixture.publish(["web", "api", "db", "cache"].map { XDSFixture.set($0, ["10.0.0.1"]) })
        let snapshot = fixture.snapshot
        let all = snapshot.names(.endpoint)
        func storage(_ names: [String]) -> UnsafeRawPointer? { names.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) } }
        #expect(storage(snapshot.sharedNames(all.map { $0 }, typeURL: ResourceType.endpoint.typeURL)) == storage(all))
        #expect(storage(snapshot.sharedNames(all.reversed(), typeURL: ResourceType.endpoint.typeURL)) != storage(all))

        var sotw = SotWStreamStateMachine(allowedTypes: [.endpoint])
        _ = sotw.onRequest(XDSRequest(request(.endpoint, names: all.reversed())), snapshot: snapshot)
        #expect(storage(sotw.types[.endpoint]!.subscribed.names) == storage(all))
        _ = sotw.onRequest(XDSRequest(request(.endpoint, names: Array(all.dropLast()))), snapshot: snapshot)
        #expect(sotw.types[.endpoint]!.subscribed.names == Array(all.dropLast()), "fewer names: its own")

        var delta = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        _ = delta.onRequest(DeltaXDSRequest(deltaRequest(.endpoint, subscribe: all.reversed())), snapshot: snapshot)
        #expect(storage(delta.types[.endpoint]!.subscribed.names) == storage(all))
    }

    static func holdsLastRound(_ assignment: Envoy_Config_Endpoint_V3_ClusterLoadAssignment) -> Bool {
        assignment.endpoints.flatMap(\.lbEndpoints).contains { $0.endpoint.address.socketAddress.address == "10.9.9.9" }
    }

    /// Slow readers during a storm of changes: a stream whose client does not read is sent nothing more
    /// until it does (the machine waits for the ACK, and a snapshot waits for the stream to be writable),
    /// then it gets the latest of every assignment: nothing lost, nothing queued per change.
    @Test func slowReadersGetTheLatestOfEverythingOnceTheyRead() async throws {
        try await XDSServiceTests.withMeshServer(services: 200, endpoints: 40) { runtime, port, mesh in
            let (writer, services, addresses, names) = (mesh.writer, mesh.services, mesh.addresses, mesh.names)
            try await withThrowingTaskGroup(of: Void.self) { group in
                let readers = 8
                let releases = (0..<readers).map { _ in AsyncStream<Void>.makeStream() }
                for (release, _) in releases {
                    group.addTask {
                        try await withADSStream(port: port) { stream in
                            stream.send(request(.endpoint, names: names))
                            // Blocked until released: the first response (about 400 KB) waits behind flow control.
                            for await _ in release { break }
                            var held: [String: Bool] = [:]  // cluster → holds the last round
                            // A lost update shows as this timeout. 10 s: in a debug build on a busy
                            // two-core machine, 2 s between two 400 KB responses was seen.
                            while let response = try await stream.next(timeout: .seconds(10)) {
                                for resource in response.resources {
                                    let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: resource)
                                    held[assignment.clusterName] = Self.holdsLastRound(assignment)
                                }
                                stream.ack(response, names: names)
                                if held.count == names.count, held.values.allSatisfy({ $0 }) { break }
                            }
                            #expect(
                                held.count == names.count && held.values.allSatisfy { $0 },
                                "latest everywhere: \(held.values.filter { !$0 }.count) stale")
                        }
                    }
                }
                #expect(await eventually { runtime.hub.streams.count == readers })
                // Twenty rounds of changes to every service while nobody reads.
                for round in 0..<20 {
                    let first = round == 19 ? "10.9.9.9" : "10.8.\(round).1"
                    try await writer.publish(services.map { F.set($0, [first] + addresses.dropFirst()) })
                }
                #expect(
                    await eventually {
                        guard let last = runtime.hub.snapshot.resource(.endpoint, named: "default/svc-199:http"),
                            let assignment = try? Envoy_Config_Endpoint_V3_ClusterLoadAssignment(serializedBytes: last.resource)
                        else { return false }
                        return Self.holdsLastRound(assignment)
                    })
                try await Task.sleep(for: .milliseconds(300))
                let pushes = runtime.hub.streams.map(\.pushes)
                #expect(pushes.allSatisfy { $0 <= 1 }, "nothing more went out before the first ACK: \(pushes)")
                for (_, releaser) in releases { releaser.yield() }
                try await group.waitForAll()
            }
        }
    }
}
