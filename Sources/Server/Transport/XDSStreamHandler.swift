import EnvoyAPI
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOSSL
import Shared
import Synchronization
import X509

/// One HTTP/2 stream of the xDS listener, on the event loop of its connection: it reads the gRPC
/// request, drives the stream's protocol machine (through `StreamDriver`) and writes its responses from
/// the shared resource bytes. A snapshot reaches it as one closure run on that loop; there is no task
/// and no copy of resource bytes per stream.
///
/// Flow control: a new snapshot is applied only while the stream is writable (HTTP/2 window and
/// NIO's watermarks); a slow reader's stream waits and then takes the latest, so what waits per stream
/// is at most the responses in flight, which the machines bound to one per type.
final class XDSStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// What every stream of the listener shares.
    struct Shared: Sendable {
        var hub: XDSHub
        var options: XDSService.Options
        var maximumRequestBytes: Int
        var metrics: XDSMetrics
        var logger: Logger
        var blocks = SharedBlocks()
    }

    private enum Phase {
        case awaitingHeaders
        case open(WireSession)
        case closed
    }

    private let shared: Shared
    private var phase = Phase.awaitingHeaders
    private var deframer: GRPCWire.Deframer
    private var context: ChannelHandlerContext?
    /// Signals from the hub, taken on the event loop.
    private let signals = SignalBox()
    /// A snapshot that waits for the stream to become writable.
    private var deferred = false

    init(shared: Shared) {
        self.shared = shared
        self.deframer = GRPCWire.Deframer(maximumBytes: shared.maximumRequestBytes)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers):
            if case .awaitingHeaders = phase {
                open(headers.headers, context: context)
            }
            if headers.endStream { requestsEnded(context: context) }
        case .data(let frame):
            guard case .open = phase else { return }
            if case .byteBuffer(let bytes) = frame.data {
                deframer.append(bytes)
                readMessages(context: context)
            }
            if frame.endStream { requestsEnded(context: context) }
        case .rstStream:
            finish()
        default:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, deferred {
            deferred = false
            drainSignals()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Opening

    private func open(_ headers: HPACKHeaders, context: ChannelHandlerContext) {
        guard headers.first(name: ":method") == "POST" else {
            return refuse(httpStatus: "405", context: context)
        }
        guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix(GRPCWire.contentType) else {
            return refuse(httpStatus: "415", context: context)
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            var trailers = GRPCWire.trailers(
                .unimplemented, "compression \"\(encoding.prefix(64))\" is not supported; send identity", only: true)
            trailers.add(name: "grpc-accept-encoding", value: "identity")
            return end(trailers, context: context)
        }
        let path = headers.first(name: ":path") ?? ""
        guard let method = XDSMethod(path: path) else {
            return end(GRPCWire.trailers(.unimplemented, "unknown method \(path.prefix(256))", only: true), context: context)
        }
        if let reason = shared.hub.notReadyReason {
            shared.metrics.refused(reason: "not_ready")
            return end(GRPCWire.trailers(.unavailable, "not ready: \(reason)", only: true), context: context)
        }
        let peer = Self.describe(context.channel.parent?.remoteAddress)
        let identities = shared.options.nodeIdentity == nil ? [] : Self.peerIdentities(context.channel.parent)
        let loop = NIOLoopBound(self, eventLoop: context.eventLoop)
        let signals = self.signals
        let eventLoop = context.eventLoop
        let notify: @Sendable (XDSHub.Signal) -> Void = { signal in
            if signals.post(signal) {
                eventLoop.execute { loop.value.drainSignals() }
            }
        }
        guard let session = method.makeSession(shared: shared, peer: peer, identities: identities, notify: notify) else {
            shared.metrics.refused(reason: "too_many_streams")
            return end(
                GRPCWire.trailers(
                    .resourceExhausted, "this server has \(shared.options.maximumStreams) xDS streams open already; try another replica",
                    only: true),
                context: context)
        }
        shared.metrics.streamsChanged(shared.hub.streamCounts)
        phase = .open(session)
        context.write(wrapOutboundOut(.headers(.init(headers: GRPCWire.responseHeaders()))), promise: nil)
        context.flush()
    }

    // MARK: Requests and signals

    private func readMessages(context: ChannelHandlerContext) {
        while case .open(let session) = phase {
            let message: ByteBuffer
            do {
                guard let next = try deframer.next() else { return }
                message = next
            } catch {
                return fail(error.status, error.message, context: context)
            }
            switch session.receive(message) {
            case .send(let responses):
                write(responses, session: session, changeArrivedAt: nil, context: context)
            case .fail(let status, let text):
                return fail(status, text, context: context)
            }
        }
    }

    private func requestsEnded(context: ChannelHandlerContext) {
        guard case .open = phase else { return }
        if deframer.pendingBytes > 0 {
            return fail(.internal, "the request stream ended inside a message", context: context)
        }
        end(GRPCWire.trailers(.ok, nil), context: context)
    }

    /// Applies what the hub signalled since the last time: shutdown, or the latest snapshot.
    fileprivate func drainSignals() {
        guard let context, case .open(let session) = phase else { return }
        guard let signal = signals.take() else { return }
        switch signal {
        case .shutdown:
            fail(.unavailable, XDSError.shuttingDown.message, context: context)
        case .snapshot(let snapshot, let changeArrivedAt):
            guard context.channel.isWritable else {
                // Taken again, with anything newer, once the client has read what is in flight.
                signals.putBack(signal)
                deferred = true
                return
            }
            switch session.refresh(snapshot) {
            case .send(let responses):
                if !responses.isEmpty { write(responses, session: session, changeArrivedAt: changeArrivedAt, context: context) }
            case .fail(let status, let text):
                fail(status, text, context: context)
            }
        }
    }

    // MARK: Writing

    /// Resource fields up to this size are copied into the message's first frame: a copy of a few KB
    /// costs less than a DATA frame of its own. Larger ones go out as the shared buffers they are.
    static let copyBelowBytes = 4096

    private func write(
        _ responses: [any OutboundMessage], session: WireSession, changeArrivedAt: ContinuousClock.Instant?,
        context: ChannelHandlerContext
    ) {
        let controlPlane = shared.options.controlPlaneIdentifier
        var sizes: [Int] = []
        sizes.reserveCapacity(responses.count)
        for response in responses {
            let head = response.head(controlPlane: controlPlane)
            let tail = response.tail(controlPlane: controlPlane)
            let fields = response.resourceFields
            let fieldBytes = fields.reduce(0) { $0 + $1.readableBytes }
            let length = head.count + fieldBytes + tail.count
            let copy = fieldBytes <= Self.copyBelowBytes
            var first = context.channel.allocator.buffer(capacity: 5 + head.count + (copy ? fieldBytes + tail.count : 0))
            first.writeMultipleIntegers(UInt8(0), UInt32(length))
            first.writeBytes(head)
            if copy {
                for field in fields { first.writeImmutableBuffer(field) }
                first.writeBytes(tail)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(first)))), promise: nil)
            } else if fields.count >= SharedBlocks.minimumResources {
                let block = shared.blocks.block(
                    delta: type(of: response).usesDeltaFields, resources: response.encodedResources, fields: fields)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(first)))), promise: nil)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(block)))), promise: nil)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(context.channel.allocator.buffer(bytes: tail))))), promise: nil)
            } else {
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(first)))), promise: nil)
                for field in fields { context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(field)))), promise: nil) }
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(context.channel.allocator.buffer(bytes: tail))))), promise: nil)
            }
            sizes.append(length)
        }
        context.flush()
        session.sent(responses, sizes: sizes, changeArrivedAt: changeArrivedAt)
    }

    // MARK: Ending

    private func fail(_ status: GRPCWire.Status, _ message: String, context: ChannelHandlerContext) {
        let only: Bool
        if case .open = phase { only = false } else { only = true }
        end(GRPCWire.trailers(status, message, only: only), context: context)
    }

    /// Sends the trailers (END_STREAM). No RST_STREAM follows: gRPC clients end their side when they
    /// read the status, and one that arrives while a client still reads the last message makes
    /// grpc-swift's client report the stream as closed unexpectedly instead of the status.
    private func end(_ trailers: HPACKHeaders, context: ChannelHandlerContext) {
        guard !isClosed else { return }
        finish()
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    }

    private func refuse(httpStatus: String, context: ChannelHandlerContext) {
        end([":status": httpStatus], context: context)
    }

    private var isClosed: Bool {
        if case .closed = phase { return true }
        return false
    }

    /// Unregisters the stream (idempotent).
    private func finish() {
        if case .open(let session) = phase {
            session.close()
            shared.metrics.streamsChanged(shared.hub.streamCounts)
        }
        phase = .closed
    }

    // MARK: Peers

    /// As gRPC names peers: `ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`.
    static func describe(_ address: SocketAddress?) -> String {
        switch address {
        case .v4(let v4)?: "ipv4:\(v4.host):\(address?.port ?? 0)"
        case .v6(let v6)?: "ipv6:[\(v6.host)]:\(address?.port ?? 0)"
        case .unixDomainSocket?: "unix:\(address?.pathname ?? "")"
        case nil: "unknown"
        }
    }

    /// The URI and DNS names of the client's TLS certificate (none without mutual TLS).
    static func peerIdentities(_ connection: (any Channel)?) -> [String] {
        guard let connection, let handler = try? connection.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let peer = handler.peerCertificate, let certificate = try? Certificate(derEncoded: try peer.toDERBytes())
        else { return [] }
        return NodeIdentityRule.identities(of: certificate)
    }
}
