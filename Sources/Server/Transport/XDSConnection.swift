import Logging
import NIOCore
import NIOHPACK

/// One HTTP/2 connection of the xDS listener, server side (RFC 9113), with its streams (`XDSStream`),
/// flow control and connection management, as one handler on the connection's event loop.
///
/// Why not swift-nio-http2's handler and multiplexer: they gave every stream a child channel and
/// every frame a walk through two pipelines and a copy of the connection state machine; under
/// `legation-bench fanout` that was most of the server's CPU per update and about 30 KB of memory per
/// connection (benchmarks/README.md, issue 15). xDS needs little of HTTP/2: long-lived streams that
/// carry gRPC messages, opened by the client. This is that part, as grpc-go's server transport does it
/// over a framer: frames are read in place, header blocks decoded by NIOHPACK, and DATA written as
/// slices of the shared resource bytes.
///
/// What it enforces: the client preface and SETTINGS first; frame sizes; stream ids (odd, rising);
/// header blocks whole and uninterrupted, at most `maximumHeaderBlockBytes`; flow control both ways
/// (a client that sends beyond its window is a FLOW_CONTROL_ERROR; what this side sends waits for the
/// client's window); at most `maximumStreams` open streams (REFUSED_STREAM beyond); resets faster than
/// `maximumResetsPerSecond` (the "rapid reset" attack) and pings more often than
/// `minimumClientPingInterval` (gRPC's "too_many_pings") end the connection with ENHANCE_YOUR_CALM.
/// A connection error is a GOAWAY with its code and a reason, a log line and
/// `legation_xds_connections_closed_total{reason}`; other connections are untouched.
///
/// Connection management, as gRPC servers do it: a PING every `keepaliveTime`, the connection closed
/// if one is not answered within `keepaliveTimeout`; `ChannelShouldQuiesceEvent` (maximum connection
/// age, shutdown) sends a GOAWAY naming the last stream opened, and the connection closes when its
/// streams have, or after `gracePeriod`.
final class XDSConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Options: Sendable {
        var keepaliveTime: Duration
        var keepaliveTimeout: Duration
        var minimumClientPingInterval: Duration = .seconds(5)
        var gracePeriod: Duration
        var maximumStreams: Int
        /// The receive window granted to each stream and to the connection.
        var streamWindow = 1 << 20
        var connectionWindow = 1 << 20
        var maximumHeaderBlockBytes = 64 * 1024
        var maximumHeaderListBytes = 16 * 1024
        var maximumResetsPerSecond = 200
    }

    private enum Preface {
        case awaitingPreface
        case awaitingSettings
        case done
    }

    /// A header block that continues in CONTINUATION frames.
    private struct PartialHeaders {
        var streamID: UInt32
        var endStream: Bool
        var bytes: ByteBuffer
    }

    private static let keepalivePing: UInt64 = 0x6c65_6761_7469_6f6e  // "legation"
    /// DATA payloads up to this size are copied into the connection's write buffer with their frame
    /// header; larger ones are written as the (shared) buffers they are.
    private static let copyPayloadBelowBytes = 4096

    private let options: Options
    private let shared: XDSStream.Shared
    private var context: ChannelHandlerContext?
    let allocator: ByteBufferAllocator

    private var preface = Preface.awaitingPreface
    private var inbound: ByteBuffer?
    private var decoder: HPACKDecoder
    private var partialHeaders: PartialHeaders?
    private var streams: [UInt32: XDSStream] = [:]
    private var lastStreamID: UInt32 = 0

    // What the client said.
    private var peerMaximumFrameBytes = HTTP2Wire.defaultMaximumFrameBytes
    private var peerInitialWindow = HTTP2Wire.defaultWindow
    // Flow control of the connection: what this side may send, and what the client may.
    private var sendWindow = HTTP2Wire.defaultWindow
    private var receiveWindow = HTTP2Wire.defaultWindow
    private var unannounced = 0

    /// Frames written since the last flush, gathered into one buffer.
    private var outbound: ByteBuffer?
    private var wroteSinceFlush = false
    /// The socket is under its high watermark (kept from writability events: reading the channel's
    /// costs more, and streams ask on every snapshot).
    private var socketWritable = true

    private var pingTask: Scheduled<Void>?
    private var timeoutTask: Scheduled<Void>?
    private var graceTask: Scheduled<Void>?
    private var lastClientPing: NIODeadline?
    private var pingStrikes = 0
    private var resets = (count: 0, since: NIODeadline.now())
    private var goingAway = false
    private var closed = false

    init(options: Options, shared: XDSStream.Shared, allocator: ByteBufferAllocator) {
        self.options = options
        self.shared = shared
        self.allocator = allocator
        self.decoder = HPACKDecoder(
            allocator: allocator, maxDynamicTableSize: HPACKDecoder.maxDynamicTableSize, maxHeaderListSize: options.maximumHeaderListBytes)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        shared.logger.debug("an xDS connection failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if inbound == nil || inbound!.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        readFrames(context: context)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        socketWritable = context.channel.isWritable
        if socketWritable {
            for stream in streams.values where !stream.hasQueuedData { stream.becameWritable() }
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            goAway(.noError, reason: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func start(context: ChannelHandlerContext) {
        guard pingTask == nil, !closed else { return }
        schedulePing()
    }

    /// The server's preface, once the client's has arrived (so that what is not HTTP/2 can be
    /// answered in its own terms): its SETTINGS, then the rest of the connection window it grants.
    private func sendPreface() {
        let settings: [(HTTP2Wire.Setting, Int)] = [
            (.maximumConcurrentStreams, options.maximumStreams),
            (.initialWindowSize, options.streamWindow),
            (.maximumHeaderListSize, options.maximumHeaderListBytes)
        ]
        writeFrame(.settings, flags: 0, stream: 0, length: settings.count * 6) { buffer in
            for (setting, value) in settings { buffer.writeMultipleIntegers(setting.rawValue, UInt32(value)) }
        }
        if options.connectionWindow > HTTP2Wire.defaultWindow {
            writeWindowUpdate(stream: 0, increment: options.connectionWindow - HTTP2Wire.defaultWindow)
            receiveWindow = options.connectionWindow
        }
    }

    // MARK: Reading frames

    private func readFrames(context: ChannelHandlerContext) {
        while !closed, var buffer = inbound {
            // Taken out while it is read, so that compacting it copies nothing.
            inbound = nil
            if preface == .awaitingPreface {
                guard readPreface(&buffer) else {
                    if !closed { inbound = buffer }
                    return
                }
            }
            guard let header = HTTP2Wire.FrameHeader.peek(buffer) else {
                inbound = buffer.readableBytes > 0 ? buffer : nil
                return
            }
            guard header.length <= HTTP2Wire.defaultMaximumFrameBytes else {
                return connectionError(.frameSizeError, "a frame of \(header.length) bytes, above the 16,384 this server allows")
            }
            guard buffer.readableBytes >= HTTP2Wire.frameHeaderBytes + header.length else {
                // The rest of the frame has not arrived.
                if buffer.readerIndex > 0 { buffer.discardReadBytes() }
                inbound = buffer
                return
            }
            buffer.moveReaderIndex(forwardBy: HTTP2Wire.frameHeaderBytes)
            let payload = buffer.readSlice(length: header.length)!
            inbound = buffer.readableBytes > 0 ? buffer : nil
            if preface == .awaitingSettings {
                guard header.type == HTTP2Wire.FrameType.settings.rawValue, !header.has(HTTP2Wire.Flag.ack) else {
                    return connectionError(.protocolError, "the client's first frame was not SETTINGS")
                }
                preface = .done
            }
            handle(header, payload, context: context)
        }
    }

    /// - Returns: whether the preface was read (false: wait for more bytes, or the connection ends).
    private func readPreface(_ buffer: inout ByteBuffer) -> Bool {
        let expected = HTTP2Wire.clientPreface
        let available = min(buffer.readableBytes, expected.count)
        let seen = buffer.getBytes(at: buffer.readerIndex, length: available) ?? []
        guard seen.elementsEqual(expected.prefix(available)) else {
            notHTTP2(seen)
            return false
        }
        guard available == expected.count else { return false }
        buffer.moveReaderIndex(forwardBy: expected.count)
        preface = .awaitingSettings
        sendPreface()
        return true
    }

    /// Something other than HTTP/2 reached the port. An HTTP/1 request (someone's curl, or
    /// `legation status` given this port) is answered with a status that says so; anything else is
    /// closed.
    private func notHTTP2(_ seen: [UInt8]) {
        shared.metrics.connectionClosed(reason: "not_http2")
        shared.logger.info("closing a connection to the xDS port: it does not speak HTTP/2", metadata: ["peer": "\(peer)"])
        let methods = ["GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC"]
        if seen.count >= 4, methods.contains(String(decoding: seen.prefix(4), as: UTF8.self)) {
            let text = "This is an xDS (gRPC over HTTP/2) port. The xds-server's HTTP endpoints are on its debug address.\n"
            let answer =
                "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)"
            outbound = nil
            context?.writeAndFlush(wrapOutboundOut(allocator.buffer(string: answer)), promise: nil)
        }
        close()
    }

    private func handle(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer, context: ChannelHandlerContext) {
        if let partial = partialHeaders {
            guard header.type == HTTP2Wire.FrameType.continuation.rawValue, header.streamID == partial.streamID else {
                return connectionError(.protocolError, "a header block was interrupted by another frame")
            }
            return continuation(header, payload, context: context)
        }
        switch HTTP2Wire.FrameType(rawValue: header.type) {
        case .data: data(header, payload)
        case .headers: headers(header, payload, context: context)
        case .priority:
            if header.streamID == 0 { return connectionError(.protocolError, "PRIORITY on stream 0") }
            if header.length != 5 { resetStream(header.streamID, .frameSizeError) }
        case .rstStream: rstStream(header, payload)
        case .settings: settings(header, payload)
        case .pushPromise: connectionError(.protocolError, "a client sent PUSH_PROMISE")
        case .ping: ping(header, payload)
        case .goAway:
            if header.streamID != 0 { return connectionError(.protocolError, "GOAWAY on a stream") }
        case .windowUpdate: windowUpdate(header, payload)
        case .continuation: connectionError(.protocolError, "CONTINUATION without a header block to continue")
        case nil: break  // Unknown frame types are ignored (RFC 9113 §4.1).
        }
    }

    // MARK: Streams

    private func headers(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer, context: ChannelHandlerContext) {
        guard header.streamID != 0 else { return connectionError(.protocolError, "HEADERS on stream 0") }
        var fragment = payload
        var padding = 0
        if header.has(HTTP2Wire.Flag.padded) {
            guard let length = fragment.readInteger(as: UInt8.self) else { return connectionError(.frameSizeError, "HEADERS too short") }
            padding = Int(length)
        }
        if header.has(HTTP2Wire.Flag.priority) {
            guard fragment.readSlice(length: 5) != nil else { return connectionError(.frameSizeError, "HEADERS too short") }
        }
        guard padding <= fragment.readableBytes else { return connectionError(.protocolError, "HEADERS padding longer than the frame") }
        fragment = fragment.getSlice(at: fragment.readerIndex, length: fragment.readableBytes - padding)!
        let endStream = header.has(HTTP2Wire.Flag.endStream)
        if header.has(HTTP2Wire.Flag.endHeaders) {
            headerBlock(fragment, stream: header.streamID, endStream: endStream, context: context)
        } else {
            partialHeaders = PartialHeaders(streamID: header.streamID, endStream: endStream, bytes: fragment)
        }
    }

    private func continuation(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer, context: ChannelHandlerContext) {
        guard var partial = partialHeaders else { return }
        guard partial.bytes.readableBytes + payload.readableBytes <= options.maximumHeaderBlockBytes else {
            return connectionError(.enhanceYourCalm, "a header block above \(options.maximumHeaderBlockBytes) bytes")
        }
        var payload = payload
        partial.bytes.writeBuffer(&payload)
        if header.has(HTTP2Wire.Flag.endHeaders) {
            partialHeaders = nil
            headerBlock(partial.bytes, stream: partial.streamID, endStream: partial.endStream, context: context)
        } else {
            partialHeaders = partial
        }
    }

    /// A whole header block: a new stream's request headers, or a request's trailers.
    private func headerBlock(_ block: ByteBuffer, stream id: UInt32, endStream: Bool, context: ChannelHandlerContext) {
        // Every block is decoded, whatever becomes of its stream: the decoder's table depends on it.
        var block = block
        let headers: HPACKHeaders
        do {
            headers = try decoder.decodeHeaders(from: &block)
        } catch {
            return connectionError(.compressionError, "a header block could not be decoded: \(error)")
        }
        if let stream = streams[id] {
            guard endStream, !stream.remoteEnded else { return resetStream(id, .protocolError) }
            stream.remoteEnded = true
            stream.received(data: ByteBuffer(), endStream: true)
            closeIfDone(stream)
            return
        }
        // Frames on a closed stream are ignored (a client may send them before it reads the reset).
        guard id > lastStreamID else { return }
        guard id % 2 == 1 else { return connectionError(.protocolError, "a client opened stream \(id), an even id") }
        lastStreamID = id
        if goingAway { return resetStream(id, .refusedStream) }
        guard streams.count < options.maximumStreams else {
            shared.metrics.refused(reason: "too_many_streams_on_connection")
            return resetStream(id, .refusedStream)
        }
        let stream = XDSStream(id: id, connection: self, shared: shared, sendWindow: peerInitialWindow, receiveWindow: options.streamWindow)
        streams[id] = stream
        stream.remoteEnded = endStream
        stream.received(headers: headers, endStream: endStream, context: context)
        closeIfDone(stream)
    }

    private func data(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) {
        guard header.streamID != 0 else { return connectionError(.protocolError, "DATA on stream 0") }
        // Flow control counts the whole payload, padding included.
        receiveWindow -= header.length
        guard receiveWindow >= 0 else { return connectionError(.flowControlError, "the client sent beyond the connection window") }
        unannounced += header.length
        if unannounced >= options.connectionWindow / 2 {
            writeWindowUpdate(stream: 0, increment: unannounced)
            receiveWindow += unannounced
            unannounced = 0
        }
        guard let stream = streams[header.streamID] else {
            if header.streamID > lastStreamID { connectionError(.protocolError, "DATA on stream \(header.streamID), never opened") }
            return
        }
        guard !stream.remoteEnded else { return resetStream(stream.id, .streamClosed) }
        stream.receiveWindow -= header.length
        guard stream.receiveWindow >= 0 else { return resetStream(stream.id, .flowControlError) }
        var data = payload
        if header.has(HTTP2Wire.Flag.padded) {
            guard let padding = data.readInteger(as: UInt8.self), Int(padding) <= data.readableBytes else {
                return connectionError(.protocolError, "DATA padding longer than the frame")
            }
            data = data.getSlice(at: data.readerIndex, length: data.readableBytes - Int(padding))!
        }
        let endStream = header.has(HTTP2Wire.Flag.endStream)
        if endStream {
            stream.remoteEnded = true
        } else {
            stream.unannounced += header.length
            if stream.unannounced >= options.streamWindow / 2 {
                writeWindowUpdate(stream: stream.id, increment: stream.unannounced)
                stream.receiveWindow += stream.unannounced
                stream.unannounced = 0
            }
        }
        stream.received(data: data, endStream: endStream)
        closeIfDone(stream)
    }

    private func rstStream(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) {
        guard header.streamID != 0 else { return connectionError(.protocolError, "RST_STREAM on stream 0") }
        guard header.length == 4 else { return connectionError(.frameSizeError, "RST_STREAM of \(header.length) bytes") }
        guard header.streamID <= lastStreamID else { return connectionError(.protocolError, "RST_STREAM on a stream never opened") }
        let now = NIODeadline.now()
        if now - resets.since > .seconds(1) { resets = (0, now) }
        resets.count += 1
        if resets.count > options.maximumResetsPerSecond {
            return connectionError(.enhanceYourCalm, "more than \(options.maximumResetsPerSecond) stream resets in a second")
        }
        guard let stream = streams.removeValue(forKey: header.streamID) else { return }
        stream.reset()
        closeIfQuiet()
    }

    /// A stream both sides ended leaves the connection.
    private func closeIfDone(_ stream: XDSStream) {
        guard stream.remoteEnded, stream.localEnded else { return }
        streams[stream.id] = nil
        closeIfQuiet()
    }

    private func resetStream(_ id: UInt32, _ code: HTTP2Wire.ErrorCode) {
        writeFrame(.rstStream, flags: 0, stream: id, length: 4) { $0.writeInteger(code.rawValue) }
        if let stream = streams.removeValue(forKey: id) {
            stream.reset()
            closeIfQuiet()
        }
    }

    // MARK: Connection frames

    private func settings(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) {
        guard header.streamID == 0 else { return connectionError(.protocolError, "SETTINGS on a stream") }
        if header.has(HTTP2Wire.Flag.ack) {
            if header.length != 0 { connectionError(.frameSizeError, "a SETTINGS acknowledgement with a payload") }
            return
        }
        guard header.length % 6 == 0 else { return connectionError(.frameSizeError, "SETTINGS of \(header.length) bytes") }
        var payload = payload
        while let (identifier, value) = payload.readMultipleIntegers(as: (UInt16, UInt32).self) {
            switch HTTP2Wire.Setting(rawValue: identifier) {
            case .initialWindowSize:
                guard value <= HTTP2Wire.maximumWindow else {
                    return connectionError(.flowControlError, "SETTINGS_INITIAL_WINDOW_SIZE \(value) is above 2^31-1")
                }
                let change = Int(value) - peerInitialWindow
                peerInitialWindow = Int(value)
                for stream in streams.values {
                    stream.sendWindow += change
                    guard stream.sendWindow <= HTTP2Wire.maximumWindow else {
                        return connectionError(.flowControlError, "SETTINGS_INITIAL_WINDOW_SIZE took a stream's window past 2^31-1")
                    }
                }
            case .maximumFrameSize:
                guard value >= HTTP2Wire.defaultMaximumFrameBytes, value <= 16_777_215 else {
                    return connectionError(.protocolError, "SETTINGS_MAX_FRAME_SIZE \(value) is out of range")
                }
                peerMaximumFrameBytes = Int(value)
            case .enablePush:
                guard value <= 1 else { return connectionError(.protocolError, "SETTINGS_ENABLE_PUSH \(value)") }
            case .headerTableSize, .maximumConcurrentStreams, .maximumHeaderListSize, nil:
                // This side's header blocks use no dynamic table, opens no streams and stays small.
                break
            }
        }
        writeFrame(.settings, flags: HTTP2Wire.Flag.ack, stream: 0, length: 0) { _ in }
        for stream in streams.values where stream.hasQueuedData { pump(stream) }
    }

    private func ping(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) {
        guard header.streamID == 0 else { return connectionError(.protocolError, "PING on a stream") }
        guard header.length == 8, let data = payload.getInteger(at: payload.readerIndex, as: UInt64.self) else {
            return connectionError(.frameSizeError, "PING of \(header.length) bytes")
        }
        if header.has(HTTP2Wire.Flag.ack) {
            if data == Self.keepalivePing {
                timeoutTask?.cancel()
                timeoutTask = nil
            }
            return
        }
        writeFrame(.ping, flags: HTTP2Wire.Flag.ack, stream: 0, length: 8) { $0.writeInteger(data) }
        policeClientPing()
    }

    private func windowUpdate(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) {
        guard header.length == 4, let value = payload.getInteger(at: payload.readerIndex, as: UInt32.self) else {
            return connectionError(.frameSizeError, "WINDOW_UPDATE of \(header.length) bytes")
        }
        let increment = Int(value & 0x7fff_ffff)
        if header.streamID == 0 {
            guard increment > 0 else { return connectionError(.protocolError, "a WINDOW_UPDATE of 0 for the connection") }
            sendWindow += increment
            guard sendWindow <= HTTP2Wire.maximumWindow else {
                return connectionError(.flowControlError, "the connection window passed 2^31-1")
            }
            for stream in streams.values where stream.hasQueuedData { pump(stream) }
            return
        }
        guard let stream = streams[header.streamID] else {
            if header.streamID > lastStreamID { connectionError(.protocolError, "WINDOW_UPDATE on a stream never opened") }
            return
        }
        guard increment > 0 else { return resetStream(stream.id, .protocolError) }
        stream.sendWindow += increment
        guard stream.sendWindow <= HTTP2Wire.maximumWindow else { return resetStream(stream.id, .flowControlError) }
        pump(stream)
    }

    // MARK: Writing (streams)

    /// Whether a stream can take more to send: nothing of it waits for the window, and the socket is
    /// under its high watermark.
    func isWritable(_ stream: XDSStream) -> Bool {
        !stream.hasQueuedData && socketWritable
    }

    /// Queues a DATA payload of `stream` and sends what the windows allow.
    func send(data: ByteBuffer, on stream: XDSStream) {
        guard !closed, streams[stream.id] === stream, !stream.localEnded else { return }
        let count = data.readableBytes
        guard count > 0 else { return }
        if !stream.hasQueuedData, count <= min(stream.sendWindow, sendWindow, peerMaximumFrameBytes) {
            // The usual case, one frame now: no queue.
            writeData(data, stream: stream.id)
            stream.sendWindow -= count
            sendWindow -= count
            return
        }
        stream.queued.append(data)
        pump(stream)
    }

    /// Sends one gRPC message of `length` bytes that `write` appends to a buffer: straight into the
    /// connection's write buffer, framed, when it fits one frame and the windows (no copy of its own);
    /// else through `send(data:on:)`.
    func sendMessage(length: Int, on stream: XDSStream, _ write: (inout ByteBuffer) -> Void) {
        let count = 5 + length
        guard !closed, streams[stream.id] === stream, !stream.localEnded else { return }
        guard !stream.hasQueuedData, count <= min(stream.sendWindow, sendWindow, peerMaximumFrameBytes) else {
            var message = allocator.buffer(capacity: count)
            message.writeMultipleIntegers(UInt8(0), UInt32(length))
            write(&message)
            return send(data: message, on: stream)
        }
        withOutbound(reserving: HTTP2Wire.frameHeaderBytes + count) { buffer in
            HTTP2Wire.FrameHeader(length: count, type: HTTP2Wire.FrameType.data.rawValue, flags: 0, streamID: stream.id).write(to: &buffer)
            buffer.writeMultipleIntegers(UInt8(0), UInt32(length))
            write(&buffer)
        }
        stream.sendWindow -= count
        sendWindow -= count
    }

    /// Sends headers, or trailers (`endStream`) once the stream's queued data has gone.
    func send(headers: HPACKHeaders, endStream: Bool, on stream: XDSStream) {
        guard !closed, streams[stream.id] === stream, !stream.localEnded else { return }
        if endStream {
            stream.localEnded = true
            if stream.hasQueuedData {
                stream.queuedTrailers = headers
                return
            }
        }
        writeHeaders(headers, endStream: endStream, stream: stream.id)
        if endStream { closeIfDone(stream) }
    }

    /// Sends a stream's queued DATA as far as both windows allow, then its trailers if they wait.
    private func pump(_ stream: XDSStream) {
        let wasBlocked = stream.hasQueuedData
        while stream.queuedHead < stream.queued.count {
            let allowed = min(stream.sendWindow, sendWindow, peerMaximumFrameBytes)
            guard allowed > 0 else { break }
            let count = min(allowed, stream.queued[stream.queuedHead].readableBytes)
            let chunk = stream.queued[stream.queuedHead].readSlice(length: count)!
            writeData(chunk, stream: stream.id)
            stream.sendWindow -= count
            sendWindow -= count
            if stream.queued[stream.queuedHead].readableBytes == 0 {
                stream.queued[stream.queuedHead] = ByteBuffer()
                stream.queuedHead += 1
            }
        }
        guard stream.queuedHead == stream.queued.count else { return }
        stream.queued.removeAll(keepingCapacity: false)
        stream.queuedHead = 0
        if let trailers = stream.queuedTrailers {
            stream.queuedTrailers = nil
            writeHeaders(trailers, endStream: true, stream: stream.id)
            closeIfDone(stream)
        } else if wasBlocked, socketWritable {
            stream.becameWritable()
        }
    }

    // MARK: Framing

    private func writeData(_ payload: ByteBuffer, stream: UInt32) {
        let header = HTTP2Wire.FrameHeader(
            length: payload.readableBytes, type: HTTP2Wire.FrameType.data.rawValue, flags: 0, streamID: stream)
        if payload.readableBytes <= Self.copyPayloadBelowBytes {
            var payload = payload
            withOutbound(reserving: HTTP2Wire.frameHeaderBytes + payload.readableBytes) { buffer in
                header.write(to: &buffer)
                buffer.writeBuffer(&payload)
            }
        } else {
            withOutbound(reserving: HTTP2Wire.frameHeaderBytes) { header.write(to: &$0) }
            writeOutbound()
            context?.write(wrapOutboundOut(payload), promise: nil)
            wroteSinceFlush = true
        }
    }

    private func writeHeaders(_ headers: HPACKHeaders, endStream: Bool, stream: UInt32) {
        var block = allocator.buffer(capacity: 128)
        HTTP2Wire.headerBlock(headers, into: &block)
        var type = HTTP2Wire.FrameType.headers
        var flags = endStream ? HTTP2Wire.Flag.endStream : 0
        repeat {
            let chunk = block.readSlice(length: min(block.readableBytes, peerMaximumFrameBytes))!
            if block.readableBytes == 0 { flags |= HTTP2Wire.Flag.endHeaders }
            writeFrame(type, flags: flags, stream: stream, length: chunk.readableBytes) { buffer in
                var chunk = chunk
                buffer.writeBuffer(&chunk)
            }
            (type, flags) = (.continuation, 0)
        } while block.readableBytes > 0
    }

    private func writeWindowUpdate(stream: UInt32, increment: Int) {
        writeFrame(.windowUpdate, flags: 0, stream: stream, length: 4) { $0.writeInteger(UInt32(increment)) }
    }

    private func writeFrame(
        _ type: HTTP2Wire.FrameType, flags: UInt8, stream: UInt32, length: Int, payload: (inout ByteBuffer) -> Void
    ) {
        guard !closed else { return }
        withOutbound(reserving: HTTP2Wire.frameHeaderBytes + length) { buffer in
            HTTP2Wire.FrameHeader(length: length, type: type.rawValue, flags: flags, streamID: stream).write(to: &buffer)
            payload(&buffer)
        }
    }

    private func withOutbound(reserving bytes: Int, _ body: (inout ByteBuffer) -> Void) {
        if outbound == nil { outbound = allocator.buffer(capacity: max(bytes, 256)) }
        body(&outbound!)
    }

    private func writeOutbound() {
        guard let buffer = outbound, let context else { return }
        outbound = nil
        context.write(wrapOutboundOut(buffer), promise: nil)
        wroteSinceFlush = true
    }

    /// Writes what was framed since the last flush, and flushes.
    func flush() {
        writeOutbound()
        guard wroteSinceFlush, let context else { return }
        wroteSinceFlush = false
        context.flush()
    }

    // MARK: Connection errors and closing

    private func connectionError(_ code: HTTP2Wire.ErrorCode, _ reason: String) {
        guard !closed else { return }
        shared.metrics.connectionClosed(reason: code.name)
        shared.logger.info(
            "closing an xDS connection: HTTP/2 \(code.name)", metadata: ["peer": "\(peer)", "reason": "\(reason.prefix(256))"])
        writeGoAway(code, reason: reason)
        close()
    }

    private func writeGoAway(_ code: HTTP2Wire.ErrorCode, reason: String?) {
        let debug = Array((reason ?? "").utf8.prefix(256))
        writeFrame(.goAway, flags: 0, stream: 0, length: 8 + debug.count) { buffer in
            buffer.writeMultipleIntegers(lastStreamID, code.rawValue)
            buffer.writeBytes(debug)
        }
    }

    /// A GOAWAY naming the last stream opened: the client opens no more here. The connection closes
    /// when its streams have (or at once without any), or after the grace period.
    private func goAway(_ code: HTTP2Wire.ErrorCode, reason: String?) {
        guard !goingAway, !closed else { return }
        goingAway = true
        writeGoAway(code, reason: reason)
        flush()
        guard !streams.isEmpty else { return close() }
        let channel = context?.channel
        graceTask = context?.eventLoop.scheduleTask(in: .nanoseconds(options.gracePeriod.nanoseconds)) {
            channel?.close(promise: nil)
        }
    }

    private func closeIfQuiet() {
        if goingAway, streams.isEmpty { close() }
    }

    private func close() {
        guard !closed else { return }
        flush()
        closed = true
        context?.close(promise: nil)
    }

    /// The connection is gone: every stream leaves the hub.
    private func tearDown() {
        closed = true
        cancelTimers()
        let open = streams.values
        streams = [:]
        for stream in open { stream.reset() }
        inbound = nil
        outbound = nil
    }

    // MARK: Keepalive

    private func schedulePing() {
        guard pingTask == nil, let context else { return }
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        pingTask = context.eventLoop.scheduleTask(in: .nanoseconds(options.keepaliveTime.nanoseconds)) {
            let handler = loop.value
            handler.pingTask = nil
            handler.sendPing()
        }
    }

    private func sendPing() {
        guard !closed, let context else { return }
        guard preface != .awaitingPreface else {
            // Nothing may precede the server's SETTINGS, and a client has no reason to wait this long.
            shared.metrics.connectionClosed(reason: "no_preface")
            shared.logger.info("closing a connection to the xDS port: no HTTP/2 preface in time", metadata: ["peer": "\(peer)"])
            return close()
        }
        writeFrame(.ping, flags: 0, stream: 0, length: 8) { $0.writeInteger(Self.keepalivePing) }
        flush()
        if timeoutTask == nil {
            let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
            timeoutTask = context.eventLoop.scheduleTask(in: .nanoseconds(options.keepaliveTimeout.nanoseconds)) {
                let handler = loop.value
                handler.timeoutTask = nil
                handler.shared.metrics.connectionClosed(reason: "keepalive_timeout")
                handler.shared.logger.info("closing an xDS connection: keepalive ping unanswered", metadata: ["peer": "\(handler.peer)"])
                handler.close()
            }
        }
        schedulePing()
    }

    private func policeClientPing() {
        let now = NIODeadline.now()
        defer { lastClientPing = now }
        guard let last = lastClientPing, now - last < .nanoseconds(options.minimumClientPingInterval.nanoseconds) else { return }
        pingStrikes += 1
        if pingStrikes > 2 {
            shared.metrics.connectionClosed(reason: "too_many_pings")
            shared.logger.info("closing an xDS connection: the client pings too often", metadata: ["peer": "\(peer)"])
            writeGoAway(.enhanceYourCalm, reason: "too_many_pings")
            close()
        }
    }

    private func cancelTimers() {
        pingTask?.cancel()
        timeoutTask?.cancel()
        graceTask?.cancel()
        (pingTask, timeoutTask, graceTask) = (nil, nil, nil)
    }

    private var peer: String { XDSStream.describe(context?.channel.remoteAddress) }
}
