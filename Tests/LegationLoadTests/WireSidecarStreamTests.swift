import EnvoyAPI
import NIOCore
import NIOEmbedded
import NIOHPACK
import Shared
import SwiftProtobuf
import Synchronization
import Testing

@testable import LegationLoad

/// The harness's own HTTP/2 client (`WireSidecarStream.Handler`), driven frame by frame with no socket:
/// what it sends first, flow control both ways, the server's frames however they are cut (padding,
/// priority, CONTINUATION, one byte at a time), pings, and the ways a stream ends. The fan-out figures
/// rest on this client being a faithful one.
@Suite struct WireSidecarStreamTests {
    typealias Frame = WireSidecarStream.Frame

    struct Sent {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: ByteBuffer
    }

    final class Summaries: Sendable {
        let value = Mutex<[ResponseSummary]>([])
    }

    /// A client on an embedded channel, what it handed its session, and what it sends back.
    final class Rig {
        let channel = EmbeddedChannel()
        let outcome = WireSidecarStream.Outcome()
        let summaries = Summaries()
        private var written = ByteBuffer()

        init(start: [[UInt8]], answer: [UInt8] = Array("ack".utf8)) throws {
            let summaries = self.summaries
            let handler = WireSidecarStream.Handler(
                authority: "127.0.0.1:1", path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
                start: start, summary: { ResponseSummary(delta: false, keepValues: false) },
                handle: { response in
                    summaries.value.withLock { $0.append(response) }
                    return [answer]
                }, opened: {}, outcome: outcome)
            try channel.pipeline.syncOperations.addHandler(handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        }

        /// The frames the client wrote since the last call (after the preface, which `preface` takes).
        func sent() throws -> [Sent] {
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(bytes) }
            var frames: [Sent] = []
            while let (high, low, type, flags, stream) = written.getMultipleIntegers(
                at: written.readerIndex, as: (UInt8, UInt16, UInt8, UInt8, UInt32).self),
                written.readableBytes >= 9 + (Int(high) << 16 | Int(low))
            {
                written.moveReaderIndex(forwardBy: 9)
                frames.append(
                    Sent(type: type, flags: flags, stream: stream, payload: written.readSlice(length: Int(high) << 16 | Int(low))!))
            }
            return frames
        }

        func preface() throws -> [UInt8] {
            while let bytes = try channel.readOutbound(as: ByteBuffer.self) { written.writeImmutableBuffer(bytes) }
            return written.readBytes(length: Frame.preface.count) ?? []
        }

        func receive(_ bytes: ByteBuffer, piece: Int = .max) throws {
            var bytes = bytes
            while bytes.readableBytes > 0 { try channel.writeInbound(bytes.readSlice(length: min(piece, bytes.readableBytes))!) }
        }
    }

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32, _ payload: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeMultipleIntegers(UInt8(payload.count >> 16), UInt16(payload.count & 0xffff), type, flags, stream)
        buffer.writeBytes(payload)
        return buffer
    }

    static func grpc(_ message: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeMultipleIntegers(UInt8(0), UInt32(message.count))
        buffer.writeBytes(message)
        return Array(buffer.readableBytesView)
    }

    static func headerBlock(_ headers: HPACKHeaders) throws -> [UInt8] {
        var encoder = HPACKEncoder(allocator: ByteBufferAllocator())
        var buffer = ByteBuffer()
        try encoder.encode(headers: headers, to: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// A DiscoveryResponse of `count` load assignments.
    static func response(nonce: String, count: Int) throws -> [UInt8] {
        var response = Envoy_Service_Discovery_V3_DiscoveryResponse()
        response.versionInfo = "v-\(nonce)"
        response.nonce = nonce
        response.typeURL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
        response.resources = try (0..<count).map { index in
            var assignment = Envoy_Config_Endpoint_V3_ClusterLoadAssignment()
            assignment.clusterName = "svc-\(index)"
            assignment.endpoints = [
                .with { $0.lbEndpoints = [.with { $0.endpoint.address.socketAddress.address = "10.0.0.\(index % 250)" }] }
            ]
            return try Google_Protobuf_Any(message: assignment)
        }
        return try response.serializedBytes()
    }

    @Test func itOpensWithThePrefaceSettingsAWindowAndTheRequest() throws {
        let rig = try Rig(start: [Array("first".utf8)])
        #expect(try rig.preface() == Frame.preface)
        let frames = try rig.sent()
        #expect(frames.map(\.type) == [Frame.settings, Frame.windowUpdate, Frame.headers, Frame.data])
        var settings = frames[0].payload
        var values: [UInt16: UInt32] = [:]
        while let (identifier, value) = settings.readMultipleIntegers(as: (UInt16, UInt32).self) { values[identifier] = value }
        #expect(values == [0x2: 0, 0x4: UInt32(Frame.receiveWindow), 0x6: 16 * 1024])
        #expect(
            frames[1].stream == 0
                && frames[1].payload.getInteger(at: frames[1].payload.readerIndex, as: UInt32.self) == UInt32(Frame.receiveWindow - 65_535))
        var block = frames[2].payload
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        let headers = try decoder.decodeHeaders(from: &block)
        #expect(frames[2].stream == 1 && frames[2].flags == Frame.endHeaders)
        #expect(headers.first(name: ":method") == "POST" && headers.first(name: "content-type") == "application/grpc")
        #expect(headers.first(name: ":path") == "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
        #expect(headers.first(name: "te") == "trailers")
        #expect(Array(frames[3].payload.readableBytesView) == Self.grpc(Array("first".utf8)))
    }

    /// The client sends no more than the server's windows allow, in frames no larger than its frame
    /// size, and the rest when the windows open.
    @Test func requestsWaitForTheServersWindows() throws {
        let big = [UInt8](repeating: 7, count: 70_000)
        let rig = try Rig(start: [big])
        _ = try rig.preface()
        let first = try rig.sent().filter { $0.type == Frame.data }
        #expect(first.map(\.payload.readableBytes).reduce(0, +) == 65_535)
        #expect(first.allSatisfy { $0.payload.readableBytes <= 16_384 })
        // A smaller INITIAL_WINDOW_SIZE takes the stream's window below zero: nothing more may go.
        try rig.receive(Self.frame(Frame.settings, stream: 0, [0x0, 0x4, 0, 0, 0x10, 0]))  // 4,096
        try rig.receive(Self.frame(Frame.windowUpdate, stream: 0, [0, 0, 0x80, 0]))  // connection: +32,768
        let afterSettings = try rig.sent()
        #expect(afterSettings.map(\.type) == [Frame.settings] && afterSettings[0].flags == Frame.ack)
        try rig.receive(Self.frame(Frame.windowUpdate, stream: 1, [0, 1, 0, 0]))  // stream: +65,536, so 4,097 open
        let second = try rig.sent().filter { $0.type == Frame.data }
        #expect(second.map(\.payload.readableBytes) == [4097])
        try rig.receive(Self.frame(Frame.windowUpdate, stream: 1, [0, 0, 2, 0]))  // +512: room for the last 373
        let rest = try rig.sent().filter { $0.type == Frame.data }
        #expect(rest.map(\.payload.readableBytes) == [70_005 - 65_535 - 4097])
        let sentBytes = (first + second + rest).flatMap { Array($0.payload.readableBytesView) }
        #expect(sentBytes == Self.grpc(big))
    }

    /// A response however it is cut: headers in HEADERS (padded, with priority) and CONTINUATION, the
    /// message in padded DATA frames, all arriving a few bytes at a time. The client reads it whole and
    /// sends what its session answers.
    @Test(arguments: [1, 7, 4096, Int.max])
    func aResponseIsReadWhateverPiecesItArrivesIn(piece: Int) throws {
        let rig = try Rig(start: [])
        _ = try rig.preface()
        _ = try rig.sent()
        let block = try Self.headerBlock([":status": "200", "content-type": "application/grpc"])
        var bytes = ByteBuffer()
        // HEADERS: padded (pad length 3) with priority (5 bytes), the block's first 2 bytes; the rest in CONTINUATION.
        bytes.writeImmutableBuffer(
            Self.frame(Frame.headers, flags: Frame.padded | Frame.priority, stream: 1, [3, 0, 0, 0, 0, 15] + block.prefix(2) + [0, 0, 0]))
        bytes.writeImmutableBuffer(Self.frame(Frame.continuation, flags: Frame.endHeaders, stream: 1, Array(block.dropFirst(2))))
        let message = Self.grpc(try Self.response(nonce: "7", count: 40))
        for start in stride(from: 0, to: message.count, by: 1000) {
            let part = Array(message[start..<min(start + 1000, message.count)])
            bytes.writeImmutableBuffer(Self.frame(Frame.data, flags: Frame.padded, stream: 1, [2] + part + [0, 0]))
        }
        try rig.receive(bytes, piece: piece)
        let summaries = rig.summaries.value.withLock { $0 }
        #expect(summaries.count == 1)
        #expect(summaries.first?.nonce == "7" && summaries.first?.version == "v-7")
        #expect(summaries.first?.resources.map(\.name) == (0..<40).map { "svc-\($0)" })
        #expect(summaries.first?.bytes == message.count - 5)
        let answer = try rig.sent().filter { $0.type == Frame.data }
        #expect(answer.flatMap { Array($0.payload.readableBytesView) } == Self.grpc(Array("ack".utf8)))
        #expect(rig.outcome.failure.withLock { $0 } == nil)
        #expect(rig.channel.isActive)
    }

    /// Half the window read, the client gives it back on the stream and the connection.
    @Test func readingOpensTheWindowsAgain() throws {
        let rig = try Rig(start: [])
        _ = try rig.preface()
        _ = try rig.sent()
        var bytes = ByteBuffer()
        bytes.writeImmutableBuffer(Self.frame(Frame.headers, flags: Frame.endHeaders, stream: 1, try Self.headerBlock([":status": "200"])))
        let chunk = [UInt8](repeating: 0, count: 16_384)
        let frames = Frame.receiveWindow / 2 / chunk.count
        // One message as large as the frames: a length prefix, then zero bytes (field 0 never parses).
        var first = ByteBuffer()
        first.writeMultipleIntegers(UInt8(0), UInt32(frames * chunk.count - 5))
        first.writeBytes(chunk.dropFirst(5))
        bytes.writeImmutableBuffer(Self.frame(Frame.data, stream: 1, Array(first.readableBytesView)))
        for _ in 1..<frames { bytes.writeImmutableBuffer(Self.frame(Frame.data, stream: 1, chunk)) }
        try rig.receive(bytes)
        let updates = try rig.sent().filter { $0.type == Frame.windowUpdate }
        #expect(updates.map(\.stream).sorted() == [0, 1])
        #expect(updates.allSatisfy { $0.payload.getInteger(at: $0.payload.readerIndex, as: UInt32.self) == UInt32(frames * chunk.count) })
    }

    @Test func pingsAreAnsweredWithTheirData() throws {
        let rig = try Rig(start: [])
        _ = try rig.preface()
        _ = try rig.sent()
        try rig.receive(Self.frame(Frame.ping, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8]))
        try rig.receive(Self.frame(Frame.ping, flags: Frame.ack, stream: 0, [8, 7, 6, 5, 4, 3, 2, 1]))
        let frames = try rig.sent()
        #expect(frames.count == 1)
        #expect(frames.first?.type == Frame.ping && frames.first?.flags == Frame.ack)
        #expect(frames.first.map { Array($0.payload.readableBytesView) } == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// A graceful GOAWAY that names the stream lets it run to its trailers, which end it with their status.
    @Test func trailersEndTheStreamWithTheirStatusAfterAGracefulGoAway() throws {
        let rig = try Rig(start: [])
        try rig.receive(Self.frame(Frame.goAway, stream: 0, [0, 0, 0, 1, 0, 0, 0, 0]))
        #expect(rig.channel.isActive)
        #expect(rig.outcome.failure.withLock { $0 } == nil)
        let trailers = try Self.headerBlock(["grpc-status": "14", "grpc-message": "draining"])
        try rig.receive(Self.frame(Frame.headers, flags: Frame.endHeaders | Frame.endStream, stream: 1, trailers))
        #expect(rig.outcome.failure.withLock { $0 } == "the stream ended: grpc-status 14 draining")
        #expect(!rig.channel.isActive)
    }

    @Test(arguments: [
        (
            Self.frame(Frame.goAway, stream: 0, [0, 0, 0, 0, 0, 0, 0, 11] + Array("calm".utf8)),
            "GOAWAY before the stream was taken: error code 11 calm"
        ),
        (Self.frame(Frame.rstStream, stream: 1, [0, 0, 0, 8]), "the stream was reset: error code 8"),
        (Self.frame(Frame.data, stream: 1, [UInt8](repeating: 0, count: 16_385)), "a frame of 16385 bytes (above 16 KB)"),
        (Self.frame(Frame.data, flags: Frame.padded, stream: 1, [9, 1, 2]), "padding longer than its frame"),
        (Self.frame(Frame.continuation, flags: Frame.endHeaders, stream: 1, [0x88]), "CONTINUATION outside a header block"),
        (Self.frame(Frame.pushPromise, stream: 1, [0, 0, 0, 2]), "PUSH_PROMISE, which this client disabled"),
        (Self.frame(Frame.headers, flags: Frame.endHeaders, stream: 1, [0x8d]), "the server answered HTTP 404")
    ])
    func whatBreaksTheStreamEndsItWithAReason(bytes: ByteBuffer, reason: String) throws {
        let rig = try Rig(start: [])
        try rig.receive(bytes)
        #expect(rig.outcome.failure.withLock { $0 } == reason)
        #expect(!rig.channel.isActive)
    }
}
