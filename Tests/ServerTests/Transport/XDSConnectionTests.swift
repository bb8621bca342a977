import EnvoyAPI
import LegationTestSupport
import MetricsTestKit
import NIOCore
import NIOHPACK
import Shared
import SwiftProtobuf
import Testing

@testable import Server

/// The xDS listener's HTTP/2 (`XDSConnection`) against a client that sends what it is told: bad
/// frames end only their connection, with the GOAWAY code RFC 9113 gives, a metric and the server
/// still serving; flow control holds responses to the client's window; keepalive and ping policing.
@Suite struct XDSConnectionTests {
    typealias Client = RawHTTP2Client
    typealias F = XDSFixture
    static let ads = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"

    /// A ready server with `web`, its metrics, and its port.
    static func withServer(
        configure: (inout XDSServerRuntime.Options) -> Void = { _ in },
        _ body: @escaping @Sendable (TestMetrics, Int, XDSServerRuntime) async throws -> Void
    ) async throws {
        let store = InMemoryEndpointStore()
        let writer = try await TestWriter.start(store, source: F.east)
        try await writer.publish([F.set("web", ["10.0.0.1", "10.0.0.2"])])
        var options = XDSServiceTests.options()
        configure(&options)
        let metrics = TestMetrics()
        let runtime = XDSServerRuntime(reader: store, options: options, logger: .quiet(), metricsFactory: metrics)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await runtime.run() }
            guard let port = await runtime.port() else { throw XDSError(.unavailable, "server did not bind") }
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            try await body(metrics, port, runtime)
            group.cancelAll()
        }
    }

    static func closedCount(_ metrics: TestMetrics, _ reason: String) -> Int64 {
        (try? metrics.expectCounter("legation_xds_connections_closed_total", [("reason", reason)]))?.totalValue ?? 0
    }

    /// A well-behaved ADS stream gets its clusters: the server still serves.
    static func serves(port: Int) async throws -> Bool {
        try await withADSStream(port: port) { stream in
            stream.send(request(.cluster))
            return try await stream.next(timeout: .seconds(5))?.resources.count == 1
        }
    }

    @Test func theHeaderBlocksItWritesAreHPACK() throws {
        let long = String(repeating: "é%x ", count: 400)
        let headers: [HPACKHeaders] = [
            [":status": "200", "content-type": "application/grpc"],
            [":status": "415"],
            ["grpc-status": "3", "grpc-message": GRPCWire.percentEncoded(long)],
            [":status": "200", "content-type": "application/grpc", "grpc-status": "12", "grpc-accept-encoding": "identity"]
        ]
        // One decoder for all, as a connection has: each block decodes alone, whatever came before.
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator(), maxDynamicTableSize: 4096, maxHeaderListSize: 1 << 20)
        for expected in headers {
            var block = ByteBuffer()
            HTTP2Wire.headerBlock(expected, into: &block)
            var alone = block
            let decoded = try decoder.decodeHeaders(from: &block)
            var fresh = HPACKDecoder(allocator: ByteBufferAllocator(), maxDynamicTableSize: 0, maxHeaderListSize: 1 << 20)
            #expect(decoded.map { [$0.name, $0.value] } == expected.map { [$0.name, $0.value] })
            #expect(try fresh.decodeHeaders(from: &alone).map { [$0.name, $0.value] } == expected.map { [$0.name, $0.value] })
            #expect(block.readableBytes == 0)
        }
    }

    /// What no client should send, and the GOAWAY code it earns.
    enum BadInput: String, CaseIterable, CustomTestStringConvertible {
        case oversizedFrame = "a frame above 16,384 bytes"
        case zeroWindowUpdate = "a connection WINDOW_UPDATE of 0"
        case evenStreamID = "a stream opened with an even id"
        case notHPACK = "a header block that is not HPACK"
        case endlessContinuation = "CONTINUATION frames past 64 KB"
        case interruptedHeaders = "a header block interrupted by another frame"
        case dataOnIdleStream = "DATA on a stream never opened"
        case pushPromise = "PUSH_PROMISE from a client"
        case shortPing = "a PING of 4 bytes"
        case rapidReset = "more than 200 stream resets in a second"

        var testDescription: String { rawValue }

        var frames: [[UInt8]] {
            let get: [UInt8] = [0x83]  // :method POST, the static table's entry 3
            switch self {
            case .oversizedFrame: return [Client.frame(type: 0, stream: 1, length: 20_000)]
            case .zeroWindowUpdate: return [Client.frame(.windowUpdate, payload: [0, 0, 0, 0])]
            case .evenStreamID: return [Client.frame(.headers, flags: HTTP2Wire.Flag.endHeaders, stream: 2, payload: get)]
            case .notHPACK: return [Client.frame(.headers, flags: HTTP2Wire.Flag.endHeaders, stream: 1, payload: [0xff, 0xff, 0xff, 0xff])]
            case .endlessContinuation:
                return [Client.frame(.headers, stream: 1, payload: get)]
                    + (0..<6).map { _ in Client.frame(.continuation, stream: 1, payload: [UInt8](repeating: 0x40, count: 16_000)) }
            case .interruptedHeaders:
                return [Client.frame(.headers, stream: 1, payload: get), Client.frame(.ping, payload: [UInt8](repeating: 0, count: 8))]
            case .dataOnIdleStream: return [Client.frame(.data, stream: 5, payload: [0, 0, 0, 0, 0])]
            case .pushPromise: return [Client.frame(.pushPromise, stream: 1, payload: [0, 0, 0, 2])]
            case .shortPing: return [Client.frame(.ping, payload: [0, 0, 0, 0])]
            case .rapidReset:
                return (0..<300).flatMap { index -> [[UInt8]] in
                    let stream = UInt32(2 * index + 1)
                    return [
                        Client.frame(.headers, flags: HTTP2Wire.Flag.endHeaders, stream: stream, payload: get),
                        Client.frame(.rstStream, stream: stream, payload: [0, 0, 0, 8])
                    ]
                }
            }
        }

        var code: HTTP2Wire.ErrorCode {
            switch self {
            case .oversizedFrame, .shortPing: .frameSizeError
            case .zeroWindowUpdate, .evenStreamID, .interruptedHeaders, .dataOnIdleStream, .pushPromise: .protocolError
            case .notHPACK: .compressionError
            case .endlessContinuation, .rapidReset: .enhanceYourCalm
            }
        }
    }

    /// Each bad input gets its GOAWAY code and a metric, closes only its connection, and the server
    /// serves the next client.
    @Test(arguments: BadInput.allCases)
    func badFramesEndOnlyTheirConnection(_ input: BadInput) async throws {
        try await Self.withServer { metrics, port, _ in
            let client = try Client(port: port)
            client.greet()
            for frame in input.frames { client.send(frame) }
            let seen = client.frames(until: { $0.goAway != nil })
            let goAway = seen.last?.goAway
            #expect(goAway?.code == input.code.rawValue, "\(input.rawValue): \(seen.suffix(3)), \(goAway?.reason ?? "no GOAWAY")")
            #expect(client.waitForClose(), "\(input.rawValue): the connection closes")
            #expect(Self.closedCount(metrics, input.code.name) == 1, "\(input.rawValue)")
            #expect(try await Self.serves(port: port), "\(input.rawValue): the server serves the next client")
        }
    }

    /// A valid session's bytes (preface, SETTINGS, an ADS stream's headers and request, WINDOW_UPDATE,
    /// PING, the request ended), mutated, each on a connection of its own: whatever arrives, the server
    /// answers or closes, keeps serving, and no stream outlives its connection.
    @Test func mutatedSessionsNeverTakeTheServerDownNorLeaveStreamsBehind() async throws {
        try await Self.withServer { _, port, runtime in
            var headers = ByteBuffer()
            HTTP2Wire.headerBlock(
                [":method": "POST", ":scheme": "http", ":path": Self.ads, ":authority": "x", "content-type": "application/grpc"],
                into: &headers)
            let message: [UInt8] = try request(.cluster).serializedBytes()
            let session: [UInt8] =
                HTTP2Wire.clientPreface + Client.frame(.settings, payload: [0, 4, 0, 0, 0x10, 0])
                + Client.frame(.headers, flags: HTTP2Wire.Flag.endHeaders, stream: 1, payload: Array(buffer: headers))
                + Client.frame(.data, stream: 1, payload: [0] + Client.bytes(UInt32(message.count), width: 4) + message)
                + Client.frame(.windowUpdate, stream: 1, payload: [0, 1, 0, 0])
                + Client.frame(.ping, payload: [1, 2, 3, 4, 5, 6, 7, 8])
                + Client.frame(.data, flags: HTTP2Wire.Flag.endStream, stream: 1)
            var random = SplitMix64(seed: 0x6c65_6761_7469_6f6e)
            for round in 0..<150 {
                let client = try Client(port: port)
                let input = round == 0 ? session : ByteMutator.mutate(session, using: &random)
                client.send(input)
                _ = client.frames(until: { _ in false }, timeout: .milliseconds(round == 0 ? 500 : 20))
                if round == 0 { #expect(!client.closed, "the unmutated session is served") }
            }
            #expect(try await Self.serves(port: port), "the server serves after 150 mutated sessions")
            // Every connection above is closed by now (each client is gone): so are their streams.
            #expect(await eventually(within: .seconds(10)) { runtime.hub.streams.isEmpty }, "\(runtime.hub.streams.count) streams left")
        }
    }

    @Test func aClientThatDoesNotSendTheSettingsFrameFirstIsClosed() async throws {
        try await Self.withServer { metrics, port, _ in
            let client = try Client(port: port)
            client.send(HTTP2Wire.clientPreface)
            client.send(Client.frame(.ping, payload: [UInt8](repeating: 1, count: 8)))
            let frames = client.frames(until: { $0.goAway != nil })
            #expect(frames.first?.type == HTTP2Wire.FrameType.settings.rawValue, "the server's preface comes first, even before a GOAWAY")
            let goAway = frames.last?.goAway
            #expect(goAway?.code == HTTP2Wire.ErrorCode.protocolError.rawValue)
            #expect(goAway?.reason.contains("SETTINGS") == true)
            #expect(client.waitForClose())
            #expect(Self.closedCount(metrics, "protocol_error") == 1)
        }
    }

    /// An HTTP/1 request (a curl, or `legation status` given the xDS port) is told what the port is.
    @Test func anHTTP1RequestIsToldThisIsAnHTTP2Port() async throws {
        try await Self.withServer { metrics, port, _ in
            let client = try Client(port: port)
            client.send(Array("GET /debug/clients HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
            let answer = client.readAll()
            #expect(answer.hasPrefix("HTTP/1.1 505 HTTP Version Not Supported\r\n"), "\(answer.prefix(200))")
            #expect(answer.contains("debug address"))
            #expect(Self.closedCount(metrics, "not_http2") == 1)
            #expect(try await Self.serves(port: port))
        }
    }

    /// Responses wait for the client's window: a client granting 100 bytes gets 100 bytes, then
    /// nothing until it grants more, then the rest, which reads as the whole response.
    @Test func responsesWaitForTheClientsWindow() async throws {
        try await Self.withServer { _, port, _ in
            let client = try Client(port: port)
            client.greet(settings: [(.initialWindowSize, 100)])
            client.open(stream: 1, path: Self.ads)
            client.sendMessage(try request(.cluster).serializedBytes(), stream: 1)
            var data: [UInt8] = []
            func read(until done: ([UInt8]) -> Bool) {
                let deadline = ContinuousClock.now + .seconds(10)
                while !done(data), ContinuousClock.now < deadline, let frame = client.next(timeout: .seconds(2)) {
                    if frame.streamID == 1, frame.type == HTTP2Wire.FrameType.data.rawValue { data += frame.payload }
                }
            }
            func messageLength(_ data: [UInt8]) -> Int? {
                data.count >= 5 ? Int(data.dropFirst().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) : nil
            }
            read { $0.count >= 100 }
            // Then a quiet spell: nothing more may come until the window opens.
            for frame in client.frames(until: { _ in false }, timeout: .milliseconds(300))
            where frame.streamID == 1 && frame.type == HTTP2Wire.FrameType.data.rawValue {
                data += frame.payload
            }
            #expect(data.count == 100, "the first 100 bytes, then nothing")
            client.send(Client.frame(.windowUpdate, stream: 1, payload: Client.bytes(1 << 20, width: 4)))
            read { data in messageLength(data).map { data.count >= 5 + $0 } ?? false }
            #expect(data.count > 100)
            let length = messageLength(data) ?? 0
            #expect(data.count == 5 + length)
            let response = try Envoy_Service_Discovery_V3_DiscoveryResponse(serializedBytes: Array(data.dropFirst(5)))
            #expect(response.resources.count == 1)
        }
    }

    /// A client that opens its windows as wide as HTTP/2 allows (Envoy's default is 256 MB) and then
    /// reads nothing: the server's connection keeps no more than the socket's high watermark (64 KB)
    /// and a frame in NIO's write queue, the rest of a 3 MB answer waiting as slices of the shared
    /// bytes. Once the client reads, all of it arrives.
    @Test func aClientWithWideWindowsThatDoesNotReadHasLittleQueued() async throws {
        try await XDSServiceTests.withMeshServer(services: 400, endpoints: 200) { runtime, _, mesh in
            let options = XDSServiceTests.options()
            let listener = XDSListener(
                serving: options.serving,
                shared: XDSStream.Shared(
                    hub: runtime.hub, options: options.service, maximumRequestBytes: options.serving.maximumRequestBytes,
                    metrics: XDSMetrics(factory: TestMetrics()), logger: .quiet()),
                tls: nil, threads: 1)
            let port = try await listener.bind()
            let client = try Client(port: port, receiveBuffer: 16 * 1024)
            client.greet(settings: [(.initialWindowSize, UInt32(Int32.max))])
            client.send(Client.frame(.windowUpdate, payload: Client.bytes(UInt32(Int32.max) - 65_535, width: 4)))
            client.open(stream: 1, path: Self.ads)
            client.sendMessage(try request(.endpoint, names: mesh.names).serializedBytes(), stream: 1)
            #expect(await eventually { runtime.hub.streams.contains { $0.pushes >= 1 } })
            try await Task.sleep(for: .milliseconds(300))
            let connection = try #require(listener.connectionChannels.first)
            let queued = try await connection.getOption(ChannelOptions.bufferedWritableBytes).get()
            #expect(queued <= 64 * 1024 + 2 * 16_384, "queued in NIO: \(queued) bytes")

            var data: [UInt8] = []
            var length: Int?
            let deadline = ContinuousClock.now + .seconds(10)
            while length.map({ data.count < 5 + $0 }) ?? true, ContinuousClock.now < deadline, let frame = client.next(timeout: .seconds(2))
            {
                guard frame.streamID == 1, frame.type == HTTP2Wire.FrameType.data.rawValue else { continue }
                data += frame.payload
                if length == nil, data.count >= 5 { length = Int(data.dropFirst().prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) }
            }
            #expect(length.map { $0 > 2_500_000 } == true, "a large answer: \(length ?? 0) bytes")
            #expect(data.count == 5 + (length ?? -5))
            let response = try Envoy_Service_Discovery_V3_DiscoveryResponse(serializedBytes: Array(data.dropFirst(5).prefix(length ?? 0)))
            #expect(response.resources.count == mesh.services.count)
            await listener.close()
        }
    }

    @Test func clientPingsAreAnsweredAndTooManyEndTheConnection() async throws {
        try await Self.withServer { metrics, port, _ in
            let client = try Client(port: port)
            client.greet()
            let data: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8]
            client.send(Client.frame(.ping, payload: data))
            let ack = client.frames(until: { $0.type == HTTP2Wire.FrameType.ping.rawValue }).last
            #expect(ack?.flags == HTTP2Wire.Flag.ack && ack?.payload == data)
            for _ in 0..<3 { client.send(Client.frame(.ping, payload: data)) }
            let goAway = client.frames(until: { $0.goAway != nil }).last?.goAway
            #expect(goAway?.code == HTTP2Wire.ErrorCode.enhanceYourCalm.rawValue && goAway?.reason == "too_many_pings")
            #expect(client.waitForClose())
            #expect(Self.closedCount(metrics, "too_many_pings") == 1)
        }
    }

    @Test func aConnectionThatDoesNotAnswerKeepalivePingsIsClosed() async throws {
        let configure: (inout XDSServerRuntime.Options) -> Void = {
            $0.serving.keepaliveTime = .milliseconds(300)
            $0.serving.keepaliveTimeout = .seconds(1)
        }
        try await Self.withServer(configure: configure) { metrics, port, _ in
            let silent = try Client(port: port)
            silent.greet()
            let answering = try Client(port: port)
            answering.greet()
            let ping = answering.frames(until: { $0.type == HTTP2Wire.FrameType.ping.rawValue && $0.flags == 0 }).last
            #expect(ping != nil, "the server pings")
            answering.send(Client.frame(.ping, flags: HTTP2Wire.Flag.ack, payload: ping?.payload ?? []))
            #expect(silent.waitForClose(timeout: .seconds(3)), "no answer: closed")
            #expect(Self.closedCount(metrics, "keepalive_timeout") == 1)
            // The one that answered is still open: it still receives pings.
            for _ in 0..<2 {
                let next = answering.frames(until: { $0.type == HTTP2Wire.FrameType.ping.rawValue && $0.flags == 0 }).last
                answering.send(Client.frame(.ping, flags: HTTP2Wire.Flag.ack, payload: next?.payload ?? []))
            }
            #expect(!answering.closed)
        }
    }
}
