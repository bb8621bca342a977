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
/// over a framer: `HTTP2FrameReader` turns bytes into frames and whole header blocks (decoded here by
/// NIOHPACK), `HTTP2Sender` paces what goes out under flow control (DATA as slices of the shared
/// resource bytes, framed by `HTTP2FrameWriter`); this handler gives frames their meaning: streams,
/// windows, settings, pings, closing.
///
/// What it enforces: the client preface and SETTINGS first; frame sizes; stream ids (odd, rising);
/// header blocks whole and uninterrupted, at most `maximumHeaderBlockBytes`; flow control both ways
/// (a client that sends beyond its window is a FLOW_CONTROL_ERROR; what this side sends waits for the
/// client's window); at most `maximumStreams` open streams (REFUSED_STREAM beyond); resets and pings
/// too often (`ClientConduct`) end the connection with ENHANCE_YOUR_CALM.
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

    private static let keepalivePing: UInt64 = 0x6c65_6761_7469_6f6e  // "legation"

    private let options: Options
    private let shared: XDSStream.Shared
    private var context: ChannelHandlerContext?
    let allocator: ByteBufferAllocator

    private var reader: HTTP2FrameReader
    private let sender: HTTP2Sender
    private var decoder: HPACKDecoder
    private var streams: [UInt32: XDSStream] = [:]
    private var lastStreamID: UInt32 = 0

    private var peerInitialWindow = HTTP2Wire.defaultWindow
    /// What the client may send on the connection (what this side may send is the sender's).
    private var receiveWindow: ReceiveWindow

    private var prefaceSent = false
    /// Something was written since the last flush.
    private var wroteSinceFlush = false

    private let keepalive: KeepaliveTimer
    private var conduct: ClientConduct
    private var graceTask: Scheduled<Void>?
    private var goingAway = false
    private var closed = false

    init(options: Options, shared: XDSStream.Shared, allocator: ByteBufferAllocator) {
        self.options = options
        self.shared = shared
        self.allocator = allocator
        self.reader = HTTP2FrameReader(maximumHeaderBlockBytes: options.maximumHeaderBlockBytes)
        self.sender = HTTP2Sender(allocator: allocator)
        self.receiveWindow = ReceiveWindow(size: options.connectionWindow, available: HTTP2Wire.defaultWindow)
        self.keepalive = KeepaliveTimer(interval: options.keepaliveTime, timeout: options.keepaliveTimeout)
        self.conduct = ClientConduct(
            maximumResetsPerSecond: options.maximumResetsPerSecond, minimumPingInterval: options.minimumClientPingInterval)
        self.decoder = HPACKDecoder(
            allocator: allocator, maxDynamicTableSize: HPACKDecoder.maxDynamicTableSize, maxHeaderListSize: options.maximumHeaderListBytes)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { startKeepalive(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startKeepalive(context: context)
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
        reader.append(unwrapInboundIn(data))
        do {
            while !closed, let item = try reader.next() {
                sendPrefaceOnce()
                switch item {
                case .frame(let header, let payload): try handle(header, payload)
                case .headerBlock(let id, let endStream, let block):
                    try headerBlock(block, stream: id, endStream: endStream, context: context)
                case .notHTTP2(let prefix): notHTTP2(prefix)
                }
            }
        } catch {
            connectionError(error)
        }
        sendPrefaceOnce()
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        sender.socketWritable = context.channel.isWritable
        if sender.socketWritable {
            // Waiting DATA first (it was cut off at the watermark), then streams waiting to take a snapshot.
            for stream in streams.values {
                if stream.pending.isEmpty { stream.becameWritable() } else { pump(stream) }
            }
            flush()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            goAway()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Frames

    private func handle(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) throws(HTTP2Wire.ConnectionError) {
        switch HTTP2Wire.FrameType(rawValue: header.type) {
        case .data: try data(header, payload)
        case .priority:
            if header.streamID == 0 { throw .init(.protocolError, "PRIORITY on stream 0") }
            if header.length != 5 { resetStream(header.streamID, .frameSizeError) }
        case .rstStream: try rstStream(header)
        case .settings: try settings(header, payload)
        case .pushPromise: throw .init(.protocolError, "a client sent PUSH_PROMISE")
        case .ping: try ping(header, payload)
        case .goAway:
            if header.streamID != 0 { throw .init(.protocolError, "GOAWAY on a stream") }
        case .windowUpdate: try windowUpdate(header, payload)
        case .headers, .continuation, nil: break  // Header blocks come whole from the reader; unknown types are ignored.
        }
    }

    /// The server's preface, once the client's has arrived (so that what is not HTTP/2 can be answered
    /// in its own terms): its SETTINGS, then the rest of the connection window it grants.
    private func sendPrefaceOnce() {
        guard !prefaceSent, !closed, reader.sawPreface else { return }
        prefaceSent = true
        sender.writer.settings([
            (.maximumConcurrentStreams, options.maximumStreams),
            (.initialWindowSize, options.streamWindow),
            (.maximumHeaderListSize, options.maximumHeaderListBytes)
        ])
        if let increment = receiveWindow.open() { sender.writer.windowUpdate(stream: 0, increment: increment) }
    }

    /// Something other than HTTP/2 reached the port. An HTTP/1 request (someone's curl, or
    /// `legation status` given this port) is answered with a status that says so; anything else is
    /// closed.
    private func notHTTP2(_ prefix: [UInt8]) {
        if let answer = HTTP2Wire.http1Answer(to: prefix) { write(allocator.buffer(string: answer)) }
        closeForClient(metric: "not_http2", "closing a connection to the xDS port: it does not speak HTTP/2")
    }

    // MARK: Streams

    /// A whole header block: a new stream's request headers, or a request's trailers.
    private func headerBlock(
        _ block: ByteBuffer, stream id: UInt32, endStream: Bool, context: ChannelHandlerContext
    ) throws(HTTP2Wire.ConnectionError) {
        // Every block is decoded, whatever becomes of its stream: the decoder's table depends on it.
        var block = block
        let headers: HPACKHeaders
        do {
            headers = try decoder.decodeHeaders(from: &block)
        } catch {
            throw .init(.compressionError, "a header block could not be decoded: \(error)")
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
        guard id % 2 == 1 else { throw .init(.protocolError, "a client opened stream \(id), an even id") }
        lastStreamID = id
        if goingAway { return resetStream(id, .refusedStream) }
        guard streams.count < options.maximumStreams else {
            shared.metrics.refused(reason: "too_many_streams_on_connection")
            return resetStream(id, .refusedStream)
        }
        let stream = XDSStream(
            id: id, connection: self, shared: shared, sendWindow: peerInitialWindow,
            receiveWindow: ReceiveWindow(size: options.streamWindow, available: options.streamWindow))
        streams[id] = stream
        stream.remoteEnded = endStream
        stream.received(headers: headers, endStream: endStream, context: context)
        closeIfDone(stream)
    }

    private func data(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) throws(HTTP2Wire.ConnectionError) {
        guard header.streamID != 0 else { throw .init(.protocolError, "DATA on stream 0") }
        // Flow control counts the whole payload, padding included.
        guard receiveWindow.receive(header.length) else { throw .init(.flowControlError, "the client sent beyond the connection window") }
        if let increment = receiveWindow.takeUpdate() { sender.writer.windowUpdate(stream: 0, increment: increment) }
        guard let stream = streams[header.streamID] else {
            if header.streamID > lastStreamID { throw .init(.protocolError, "DATA on stream \(header.streamID), never opened") }
            return
        }
        guard !stream.remoteEnded else { return resetStream(stream.id, .streamClosed) }
        guard stream.receiveWindow.receive(header.length) else { return resetStream(stream.id, .flowControlError) }
        var data = payload
        if header.has(HTTP2Wire.Flag.padded) {
            guard let padding = data.readInteger(as: UInt8.self), Int(padding) <= data.readableBytes else {
                throw .init(.protocolError, "DATA padding longer than the frame")
            }
            data = data.getSlice(at: data.readerIndex, length: data.readableBytes - Int(padding))!
        }
        let endStream = header.has(HTTP2Wire.Flag.endStream)
        if endStream {
            stream.remoteEnded = true
        } else if let increment = stream.receiveWindow.takeUpdate() {
            sender.writer.windowUpdate(stream: stream.id, increment: increment)
        }
        stream.received(data: data, endStream: endStream)
        closeIfDone(stream)
    }

    private func rstStream(_ header: HTTP2Wire.FrameHeader) throws(HTTP2Wire.ConnectionError) {
        guard header.streamID != 0 else { throw .init(.protocolError, "RST_STREAM on stream 0") }
        guard header.length == 4 else { throw .init(.frameSizeError, "RST_STREAM of \(header.length) bytes") }
        guard header.streamID <= lastStreamID else { throw .init(.protocolError, "RST_STREAM on a stream never opened") }
        try conduct.streamReset(at: .now())
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
        sender.writer.rstStream(id, code)
        if let stream = streams.removeValue(forKey: id) {
            stream.reset()
            closeIfQuiet()
        }
    }

    // MARK: Connection frames

    private func settings(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) throws(HTTP2Wire.ConnectionError) {
        guard header.streamID == 0 else { throw .init(.protocolError, "SETTINGS on a stream") }
        if header.has(HTTP2Wire.Flag.ack) {
            if header.length != 0 { throw .init(.frameSizeError, "a SETTINGS acknowledgement with a payload") }
            return
        }
        for (setting, value) in try HTTP2Wire.settings(header, payload) {
            switch setting {
            case .initialWindowSize:
                let change = value - peerInitialWindow
                peerInitialWindow = value
                for stream in streams.values {
                    stream.sendWindow += change
                    guard stream.sendWindow <= HTTP2Wire.maximumWindow else {
                        throw .init(.flowControlError, "SETTINGS_INITIAL_WINDOW_SIZE took a stream's window past 2^31-1")
                    }
                }
            case .maximumFrameSize: sender.writer.maximumFrameBytes = value
            case .headerTableSize, .enablePush, .maximumConcurrentStreams, .maximumHeaderListSize:
                // This side's header blocks use no dynamic table, it opens no streams and stays small.
                break
            }
        }
        sender.writer.settingsAcknowledgement()
        for stream in streams.values where !stream.pending.isEmpty { pump(stream) }
    }

    private func ping(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) throws(HTTP2Wire.ConnectionError) {
        guard header.streamID == 0 else { throw .init(.protocolError, "PING on a stream") }
        guard header.length == 8, let data = payload.getInteger(at: payload.readerIndex, as: UInt64.self) else {
            throw .init(.frameSizeError, "PING of \(header.length) bytes")
        }
        if header.has(HTTP2Wire.Flag.ack) {
            if data == Self.keepalivePing { keepalive.answered() }
            return
        }
        sender.writer.ping(data, ack: true)
        try conduct.ping(at: .now())
    }

    private func windowUpdate(_ header: HTTP2Wire.FrameHeader, _ payload: ByteBuffer) throws(HTTP2Wire.ConnectionError) {
        guard header.length == 4, let value = payload.getInteger(at: payload.readerIndex, as: UInt32.self) else {
            throw .init(.frameSizeError, "WINDOW_UPDATE of \(header.length) bytes")
        }
        let increment = Int(value & 0x7fff_ffff)
        if header.streamID == 0 {
            guard increment > 0 else { throw .init(.protocolError, "a WINDOW_UPDATE of 0 for the connection") }
            guard sender.grow(by: increment) else { throw .init(.flowControlError, "the connection window passed 2^31-1") }
            for stream in streams.values where !stream.pending.isEmpty { pump(stream) }
            return
        }
        guard let stream = streams[header.streamID] else {
            if header.streamID > lastStreamID { throw .init(.protocolError, "WINDOW_UPDATE on a stream never opened") }
            return
        }
        guard increment > 0 else { return resetStream(stream.id, .protocolError) }
        stream.sendWindow += increment
        guard stream.sendWindow <= HTTP2Wire.maximumWindow else { return resetStream(stream.id, .flowControlError) }
        pump(stream)
    }

    // MARK: Sending (for streams; paced by the sender)

    /// Whether a stream can take more to send: nothing of it waits, and the socket is under its watermark.
    func isWritable(_ stream: XDSStream) -> Bool {
        sender.isWritable(stream)
    }

    /// Sends a DATA payload of `stream` as far as the windows allow; the rest waits for them.
    func send(data: ByteBuffer, on stream: XDSStream) {
        guard accepts(stream) else { return }
        settle(stream, sender.send(data: data, on: stream, write: write))
    }

    /// Sends one gRPC message of `length` bytes that `body` appends.
    func sendMessage(length: Int, on stream: XDSStream, _ body: (inout ByteBuffer) -> Void) {
        guard accepts(stream) else { return }
        settle(stream, sender.sendMessage(length: length, on: stream, write: write, body))
    }

    /// Sends headers, or trailers (`endStream`) once the stream's waiting data has gone.
    func send(headers: HPACKHeaders, endStream: Bool, on stream: XDSStream) {
        guard accepts(stream) else { return }
        if endStream { stream.localEnded = true }
        settle(stream, sender.send(headers: headers, endStream: endStream, on: stream))
    }

    /// The stream has not sent its trailers, and the connection is open. (A stream that left the
    /// connection was reset or had ended: it sends nothing more.)
    private func accepts(_ stream: XDSStream) -> Bool {
        !closed && !stream.localEnded
    }

    private func pump(_ stream: XDSStream) {
        settle(stream, sender.pump(stream, write: write))
    }

    /// What the connection does about a send's outcome: a stream whose trailers went may leave, one
    /// whose waiting data went may take a snapshot.
    private func settle(_ stream: XDSStream, _ outcome: HTTP2Sender.Outcome) {
        switch outcome {
        case .ended: closeIfDone(stream)
        case .drained: stream.becameWritable()
        case .sent, .waiting: break
        }
    }

    /// Writes `buffer` after anything gathered before it (not flushed).
    private func write(_ buffer: ByteBuffer) {
        context?.write(wrapOutboundOut(buffer), promise: nil)
        wroteSinceFlush = true
    }

    /// Writes what was framed since the last flush, and flushes.
    func flush() {
        if let gathered = sender.writer.take() { write(gathered) }
        guard wroteSinceFlush, let context else { return }
        wroteSinceFlush = false
        context.flush()
    }

    // MARK: Closing

    /// A connection error: a GOAWAY with its code and reason, then the connection closes.
    private func connectionError(_ error: HTTP2Wire.ConnectionError) {
        guard !closed else { return }
        sendPrefaceOnce()  // the server's SETTINGS come first, even before a GOAWAY
        sender.writer.goAway(lastStreamID: lastStreamID, error.code, reason: error.reason)
        closeForClient(
            metric: error.metric, "closing an xDS connection: HTTP/2 \(error.code.name)",
            metadata: ["reason": "\(error.reason.prefix(256))"])
    }

    /// Closes the connection for what the client did or did not do: counted by `metric`, logged.
    private func closeForClient(metric: String, _ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        guard !closed else { return }
        shared.metrics.connectionClosed(reason: metric)
        shared.logger.info(message, metadata: metadata.merging(["peer": "\(peer)"]) { $1 })
        close()
    }

    /// A GOAWAY naming the last stream opened (maximum connection age, shutdown): the client opens no
    /// more here. The connection closes when its streams have (or at once without any), or after the
    /// grace period.
    private func goAway() {
        guard !goingAway, !closed else { return }
        goingAway = true
        sender.writer.goAway(lastStreamID: lastStreamID, .noError, reason: nil)
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
        keepalive.cancel()
        graceTask?.cancel()
        graceTask = nil
        let open = streams.values
        streams = [:]
        for stream in open { stream.reset() }
        reader = HTTP2FrameReader(maximumHeaderBlockBytes: options.maximumHeaderBlockBytes)
        _ = sender.writer.take()
    }

    // MARK: Keepalive

    private func startKeepalive(context: ChannelHandlerContext) {
        guard !closed else { return }
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        keepalive.start(on: context.eventLoop) {
            let handler = loop.value
            guard !handler.closed else { return false }
            guard handler.reader.sawPreface else {
                // Nothing may precede the server's SETTINGS, and a client has no reason to wait this long.
                handler.closeForClient(metric: "no_preface", "closing a connection to the xDS port: no HTTP/2 preface in time")
                return false
            }
            handler.sender.writer.ping(Self.keepalivePing, ack: false)
            handler.flush()
            return true
        } timedOut: {
            loop.value.closeForClient(metric: "keepalive_timeout", "closing an xDS connection: keepalive ping unanswered")
        }
    }

    private var peer: String { XDSStream.describe(context?.channel.remoteAddress) }
}
