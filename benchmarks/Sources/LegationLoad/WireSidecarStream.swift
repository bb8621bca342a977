import NIOCore
import NIOHPACK
import NIOPosix
import Shared
import Synchronization

/// The cheap way for a simulated sidecar to hold its ADS stream: gRPC over a minimal HTTP/2 client
/// written for the harness, one handler on the TCP connection, the stream's logic run on its event loop.
///
/// The harness shares the machine with the server it loads, so what it costs is taken from the server.
/// With grpc-swift-2's client each sidecar's work measured about twice the server's; with
/// swift-nio-http2's client, its handler, multiplexer and stream channel were a third of the harness's
/// CPU during an initial sync (benchmarks/README.md). This one does what an ADS stream needs and no more:
/// one stream per connection, flow control both ways, SETTINGS and PING acknowledged, header blocks
/// decoded with NIOHPACK, a graceful GOAWAY followed to the stream's end. It is written apart from the
/// server's own framing (`Sources/Server/Transport`), so the harness checks that framing rather than
/// sharing its mistakes.
enum WireSidecarStream {
    /// Opens a connection and one ADS stream to `host:port`; returns when the stream ends.
    static func run(
        host: String, port: Int, path: String, start: [[UInt8]], summary: @escaping @Sendable () -> ResponseSummary,
        handle: @escaping @Sendable (ResponseSummary) -> [[UInt8]], opened: @escaping @Sendable () -> Void
    ) async throws {
        let outcome = Outcome()
        let connection = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton.next())
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        Handler(
                            authority: "\(host):\(port)", path: path, start: start, summary: summary, handle: handle, opened: opened,
                            outcome: outcome))
                }
            }
            .connect(host: host, port: port).get()
        try await withTaskCancellationHandler {
            try await connection.closeFuture.get()
        } onCancel: {
            connection.close(promise: nil)
        }
        if let failure = outcome.failure.withLock({ $0 }) { throw StreamEnded(description: failure) }
    }

    /// How the stream ended, when it did not end cleanly.
    final class Outcome: Sendable {
        let failure = Mutex<String?>(nil)

        func fail(_ reason: String) {
            failure.withLock { $0 = $0 ?? reason }
        }
    }

    struct StreamEnded: Error, CustomStringConvertible {
        var description: String
    }

    /// RFC 9113's numbers, as this client uses them.
    enum Frame {
        static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        // Frame types.
        static let data: UInt8 = 0
        static let headers: UInt8 = 1
        static let rstStream: UInt8 = 3
        static let settings: UInt8 = 4
        static let pushPromise: UInt8 = 5
        static let ping: UInt8 = 6
        static let goAway: UInt8 = 7
        static let windowUpdate: UInt8 = 8
        static let continuation: UInt8 = 9
        // Flags.
        static let endStream: UInt8 = 0x1
        static let ack: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4
        static let padded: UInt8 = 0x8
        static let priority: UInt8 = 0x20
        /// SETTINGS_MAX_FRAME_SIZE's default, which this client does not raise.
        static let maximumBytes = 16_384
        static let defaultWindow = 65_535
        /// The window this client gives the server, for the stream and the connection: a storm's answer
        /// of several MB flows without waiting for a WINDOW_UPDATE, as Envoy's 16 MB default allows.
        static let receiveWindow = 1 << 24
        /// The one stream.
        static let stream: UInt32 = 1
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let authority: String
        private let path: String
        private let start: [[UInt8]]
        private let summary: @Sendable () -> ResponseSummary
        private let handle: @Sendable (ResponseSummary) -> [[UInt8]]
        private let opened: @Sendable () -> Void
        private let outcome: Outcome

        /// Bytes read and not yet framed; a header block awaiting its CONTINUATION frames.
        private var inbound: ByteBuffer?
        private var partialBlock: (endStream: Bool, bytes: ByteBuffer)?
        private var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        /// Frames to write at the end of this read (one write and flush per read).
        private var out: ByteBuffer?
        /// Request bytes (gRPC-framed) waiting for the server's windows; the windows; its frame size.
        private var unsent = ByteBuffer()
        private var connectionSendWindow = Frame.defaultWindow
        private var streamSendWindow = Frame.defaultWindow
        private var peerInitialWindow = Frame.defaultWindow
        private var peerMaximumFrame = Frame.maximumBytes
        /// DATA bytes received since this client last opened its windows again.
        private var unacknowledged = 0

        /// A response is read field by field as its frames arrive: only the field being read is held
        /// (a storm's 3 MB answers, held whole by each of 1,000 sidecars, made the harness's time page
        /// faults). `prefix`: the gRPC length prefix being read; `remaining`: bytes of the message not yet
        /// read; `pending`: bytes of the field being read.
        private var prefix = ByteBuffer()
        private var reading: ResponseSummary?
        private var remaining = 0
        private var pending: [UInt8] = []

        init(
            authority: String, path: String, start: [[UInt8]], summary: @escaping @Sendable () -> ResponseSummary,
            handle: @escaping @Sendable (ResponseSummary) -> [[UInt8]], opened: @escaping @Sendable () -> Void, outcome: Outcome
        ) {
            self.outcome = outcome
            self.authority = authority
            self.path = path
            self.start = start
            self.summary = summary
            self.handle = handle
            self.opened = opened
        }

        func channelActive(context: ChannelHandlerContext) {
            var buffer = context.channel.allocator.buffer(capacity: 512)
            buffer.writeBytes(Frame.preface)
            // SETTINGS: ENABLE_PUSH 0, INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE 16 KB.
            let settings: [(UInt16, UInt32)] = [(0x2, 0), (0x4, UInt32(Frame.receiveWindow)), (0x6, 16 * 1024)]
            writeFrameHeader(length: settings.count * 6, type: Frame.settings, flags: 0, stream: 0, into: &buffer)
            for (identifier, value) in settings { buffer.writeMultipleIntegers(identifier, value) }
            writeFrameHeader(length: 4, type: Frame.windowUpdate, flags: 0, stream: 0, into: &buffer)
            buffer.writeInteger(UInt32(Frame.receiveWindow - Frame.defaultWindow))
            var encoder = HPACKEncoder(allocator: context.channel.allocator, useHuffmanEncoding: false)
            var block = context.channel.allocator.buffer(capacity: 256)
            do {
                try encoder.encode(
                    headers: [
                        ":method": "POST", ":scheme": "http", ":path": path, ":authority": authority, "content-type": "application/grpc",
                        "te": "trailers"
                    ], to: &block)
            } catch {
                return fail("encoding the request headers: \(error)", context: context)
            }
            // The request's headers fit one frame: a path and an authority are far below 16 KB.
            writeFrameHeader(length: block.readableBytes, type: Frame.headers, flags: Frame.endHeaders, stream: Frame.stream, into: &buffer)
            buffer.writeBuffer(&block)
            out = buffer
            queue(start)
            flush(context: context)
            opened()
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            if inbound == nil { inbound = bytes } else { inbound!.writeImmutableBuffer(bytes) }
            var requests: [[UInt8]] = []
            do {
                while let (type, flags, stream, payload) = try nextFrame() {
                    try receive(type: type, flags: flags, stream: stream, payload: payload, requests: &requests, context: context)
                }
            } catch {
                return fail("\(error)", context: context)
            }
            if !requests.isEmpty { queue(requests) }
            flush(context: context)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            fail("\(error)", context: context)
        }

        func channelInactive(context: ChannelHandlerContext) {
            outcome.fail("the connection closed")
            context.fireChannelInactive()
        }

        struct ProtocolError: Error, CustomStringConvertible {
            var description: String
        }

        /// The next whole frame read: type, flags, stream and payload.
        private func nextFrame() throws -> (UInt8, UInt8, UInt32, ByteBuffer)? {
            guard var buffer = inbound, buffer.readableBytes >= 9,
                let (high, low, type, flags, stream) = buffer.getMultipleIntegers(
                    at: buffer.readerIndex, as: (UInt8, UInt16, UInt8, UInt8, UInt32).self)
            else { return nil }
            let length = Int(high) << 16 | Int(low)
            guard length <= Frame.maximumBytes else { throw ProtocolError(description: "a frame of \(length) bytes (above 16 KB)") }
            guard buffer.readableBytes >= 9 + length else {
                if buffer.readerIndex > 0 {
                    inbound = nil  // so that compacting copies nothing
                    buffer.discardReadBytes()
                    inbound = buffer
                }
                return nil
            }
            buffer.moveReaderIndex(forwardBy: 9)
            let payload = buffer.readSlice(length: length)!
            inbound = buffer.readableBytes > 0 ? buffer : nil
            return (type, flags, stream & 0x7fff_ffff, payload)
        }

        private func receive(
            type: UInt8, flags: UInt8, stream: UInt32, payload: ByteBuffer, requests: inout [[UInt8]], context: ChannelHandlerContext
        ) throws {
            if partialBlock != nil, type != Frame.continuation {
                throw ProtocolError(description: "a frame of type \(type) inside a header block")
            }
            switch type {
            case Frame.data:
                guard stream == Frame.stream else { throw ProtocolError(description: "DATA on stream \(stream)") }
                unacknowledged += payload.readableBytes
                if unacknowledged >= Frame.receiveWindow / 2 {
                    // Both windows open again by what was read (one stream: the two move together).
                    writeFrame(type: Frame.windowUpdate, stream: 0, context: context) { $0.writeInteger(UInt32(self.unacknowledged)) }
                    writeFrame(type: Frame.windowUpdate, stream: Frame.stream, context: context) {
                        $0.writeInteger(UInt32(self.unacknowledged))
                    }
                    unacknowledged = 0
                }
                read(try unpadded(payload, flags: flags), requests: &requests)
                if flags & Frame.endStream != 0 { throw ProtocolError(description: "the stream ended without trailers") }
            case Frame.headers:
                var block = try unpadded(payload, flags: flags)
                if flags & Frame.priority != 0 {
                    guard block.readableBytes >= 5 else { throw ProtocolError(description: "a HEADERS frame too short for its priority") }
                    block.moveReaderIndex(forwardBy: 5)
                }
                let endStream = flags & Frame.endStream != 0
                if flags & Frame.endHeaders != 0 {
                    try headerBlock(block, endStream: endStream)
                } else {
                    partialBlock = (endStream, block)
                }
            case Frame.continuation:
                guard case (let endStream, var block)? = partialBlock else {
                    throw ProtocolError(description: "CONTINUATION outside a header block")
                }
                var more = payload
                block.writeBuffer(&more)
                guard block.readableBytes <= 64 * 1024 else { throw ProtocolError(description: "a header block above 64 KB") }
                partialBlock = nil
                if flags & Frame.endHeaders != 0 { try headerBlock(block, endStream: endStream) } else { partialBlock = (endStream, block) }
            case Frame.settings where flags & Frame.ack == 0:
                var settings = payload
                guard stream == 0, settings.readableBytes % 6 == 0 else { throw ProtocolError(description: "a malformed SETTINGS frame") }
                while let (identifier, value) = settings.readMultipleIntegers(as: (UInt16, UInt32).self) {
                    switch identifier {
                    case 0x4:
                        guard value <= Int32.max else { throw ProtocolError(description: "INITIAL_WINDOW_SIZE \(value) above 2^31-1") }
                        streamSendWindow += Int(value) - peerInitialWindow
                        peerInitialWindow = Int(value)
                    case 0x5:
                        guard (Frame.maximumBytes...(1 << 24 - 1)).contains(Int(value)) else {
                            throw ProtocolError(description: "MAX_FRAME_SIZE \(value) out of range")
                        }
                        peerMaximumFrame = Int(value)
                    default: break
                    }
                }
                writeFrame(type: Frame.settings, flags: Frame.ack, stream: 0, context: context) { _ in }
            case Frame.ping where flags & Frame.ack == 0:
                guard payload.readableBytes == 8 else { throw ProtocolError(description: "a PING of \(payload.readableBytes) bytes") }
                writeFrame(type: Frame.ping, flags: Frame.ack, stream: 0, context: context) { $0.writeImmutableBuffer(payload) }
            case Frame.windowUpdate:
                guard let increment = payload.getInteger(at: payload.readerIndex, as: UInt32.self) else {
                    throw ProtocolError(description: "a malformed WINDOW_UPDATE")
                }
                if stream == 0 {
                    connectionSendWindow += Int(increment & 0x7fff_ffff)
                } else {
                    streamSendWindow += Int(increment & 0x7fff_ffff)
                }
            case Frame.rstStream:
                let code = payload.getInteger(at: payload.readerIndex, as: UInt32.self).map(String.init) ?? "?"
                throw ProtocolError(description: "the stream was reset: error code \(code)")
            case Frame.goAway:
                let last = payload.getInteger(at: payload.readerIndex, as: UInt32.self).map { $0 & 0x7fff_ffff } ?? 0
                let code = payload.getInteger(at: payload.readerIndex + 4, as: UInt32.self) ?? 0
                // A graceful GOAWAY (maximum connection age, a server stopping) names this stream: it runs
                // on to its trailers, as Envoy's does.
                guard last >= Frame.stream else {
                    let debug = payload.getString(at: payload.readerIndex + 8, length: max(0, payload.readableBytes - 8)) ?? ""
                    throw ProtocolError(description: "GOAWAY before the stream was taken: error code \(code) \(debug)")
                }
            case Frame.pushPromise:
                throw ProtocolError(description: "PUSH_PROMISE, which this client disabled")
            default:
                break  // PRIORITY, acknowledgements, and frame types this client does not know (RFC 9113 §4.1: ignored).
            }
        }

        /// The payload without its padding, when the frame is PADDED.
        private func unpadded(_ payload: ByteBuffer, flags: UInt8) throws -> ByteBuffer {
            guard flags & Frame.padded != 0 else { return payload }
            var payload = payload
            guard let padding = payload.readInteger(as: UInt8.self), Int(padding) <= payload.readableBytes else {
                throw ProtocolError(description: "padding longer than its frame")
            }
            return payload.readSlice(length: payload.readableBytes - Int(padding))!
        }

        /// The response's headers (`:status` 200) or its trailers (the stream's end, with its gRPC status).
        private func headerBlock(_ block: ByteBuffer, endStream: Bool) throws {
            var block = block
            let headers = try decoder.decodeHeaders(from: &block)
            if let status = headers.first(name: ":status"), status != "200" {
                throw ProtocolError(description: "the server answered HTTP \(status)")
            }
            guard endStream else { return }
            let status = headers.first(name: "grpc-status") ?? "?"
            throw ProtocolError(description: "the stream ended: grpc-status \(status) \(headers.first(name: "grpc-message") ?? "")")
        }

        /// A DATA payload: gRPC messages, each summarized field by field.
        private func read(_ payload: ByteBuffer, requests: inout [[UInt8]]) {
            var bytes = payload
            while bytes.readableBytes > 0 {
                guard reading != nil else {
                    var part = bytes.readSlice(length: min(5 - prefix.readableBytes, bytes.readableBytes))!
                    prefix.writeBuffer(&part)
                    guard prefix.readableBytes == 5, let length = prefix.getInteger(at: prefix.readerIndex + 1, as: UInt32.self) else {
                        continue
                    }
                    prefix.clear()
                    var response = summary()
                    response.bytes = Int(length)
                    (reading, remaining) = (response, Int(length))
                    if length == 0 { finishMessage(&requests) }
                    continue
                }
                let take = min(remaining, bytes.readableBytes)
                bytes.readWithUnsafeReadableBytes { raw in
                    pending.append(contentsOf: raw.prefix(take))
                    return take
                }
                remaining -= take
                var consumed = 0
                while consumed < pending.count, let (number, value, end) = WireFormat.field(in: pending, at: consumed) {
                    reading!.add(number, pending[value])  // in place: a copy would copy the resources read so far
                    consumed = end
                }
                pending.removeFirst(consumed)
                if remaining == 0 { finishMessage(&requests) }
            }
        }

        private func finishMessage(_ requests: inout [[UInt8]]) {
            guard let response = reading else { return }
            reading = nil
            pending.removeAll(keepingCapacity: true)
            requests += handle(response)
        }

        private func fail(_ reason: String, context: ChannelHandlerContext) {
            outcome.fail(reason)
            context.close(promise: nil)
        }

        /// Requests to send, gRPC-framed, as the server's windows allow.
        private func queue(_ messages: [[UInt8]]) {
            for message in messages {
                unsent.writeMultipleIntegers(UInt8(0), UInt32(message.count))
                unsent.writeBytes(message)
            }
        }

        /// Writes what was gathered, with as much of the unsent requests as the windows take, at once.
        private func flush(context: ChannelHandlerContext) {
            while unsent.readableBytes > 0, min(connectionSendWindow, streamSendWindow) > 0 {
                let length = min(unsent.readableBytes, connectionSendWindow, streamSendWindow, peerMaximumFrame)
                var chunk = unsent.readSlice(length: length)!
                writeFrame(type: Frame.data, stream: Frame.stream, context: context) { $0.writeBuffer(&chunk) }
                connectionSendWindow -= length
                streamSendWindow -= length
            }
            if unsent.readableBytes == 0 { unsent.clear() }
            guard let bytes = out else { return }
            out = nil
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        }

        private func writeFrame(
            type: UInt8, flags: UInt8 = 0, stream: UInt32, context: ChannelHandlerContext, payload: (inout ByteBuffer) -> Void
        ) {
            var buffer = out ?? context.channel.allocator.buffer(capacity: 256)
            out = nil  // so that writing into it copies nothing
            let start = buffer.writerIndex
            writeFrameHeader(length: 0, type: type, flags: flags, stream: stream, into: &buffer)
            payload(&buffer)
            let length = buffer.writerIndex - start - 9
            buffer.setMultipleIntegers(UInt8(length >> 16), UInt16(length & 0xffff), at: start)
            out = buffer
        }

        private func writeFrameHeader(length: Int, type: UInt8, flags: UInt8, stream: UInt32, into buffer: inout ByteBuffer) {
            buffer.writeMultipleIntegers(UInt8(length >> 16), UInt16(length & 0xffff), type, flags, stream)
        }
    }
}
