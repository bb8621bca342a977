import EnvoyAPI
import Logging
import NIOCore
import NIOHPACK
import NIOSSL
import Shared
import Synchronization
import X509

/// One HTTP/2 stream of the xDS listener, on the event loop of its connection: it reads the gRPC
/// request, drives the stream's protocol machine (through `StreamDriver`) and writes its responses from
/// the shared resource bytes. A snapshot reaches it as one closure run on that loop; there is no task,
/// no channel and no copy of resource bytes per stream. Its connection (`XDSConnection`) frames what it
/// writes and owns flow control.
///
/// Flow control: a new snapshot is applied only while the stream is writable (nothing of it waits for
/// the HTTP/2 window, and the socket is under NIO's watermarks); a slow reader's stream waits and then
/// takes the latest, so what waits per stream is at most the responses in flight, which the machines
/// bound to one per type.
final class XDSStream {
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

    let id: UInt32
    private let shared: Shared
    private weak var connection: XDSConnection?
    private var phase = Phase.awaitingHeaders
    private var deframer: GRPCWire.Deframer
    /// Signals from the hub, taken on the event loop.
    private let signals = SignalBox()
    /// A snapshot that waits for the stream to become writable.
    private var deferred = false

    // Flow control, kept by the connection.
    /// What the client lets this side send on the stream.
    var sendWindow: Int
    /// What the client may still send before this side grants more.
    var receiveWindow: ReceiveWindow
    /// What waits for the client's window.
    var pending = PendingData()
    /// The client ended its side (END_STREAM); this side sent its trailers.
    var remoteEnded = false
    var localEnded = false

    init(id: UInt32, connection: XDSConnection, shared: Shared, sendWindow: Int, receiveWindow: ReceiveWindow) {
        self.id = id
        self.connection = connection
        self.shared = shared
        self.sendWindow = sendWindow
        self.receiveWindow = receiveWindow
        self.deframer = GRPCWire.Deframer(maximumBytes: shared.maximumRequestBytes)
    }

    /// The client's request headers.
    func received(headers: HPACKHeaders, endStream: Bool, context: ChannelHandlerContext) {
        if case .awaitingHeaders = phase { open(headers, context: context) }
        if endStream { requestsEnded() }
    }

    /// A DATA payload of the request stream.
    func received(data: ByteBuffer, endStream: Bool) {
        if case .open = phase {
            deframer.append(data)
            readMessages()
        }
        if endStream { requestsEnded() }
    }

    /// The client reset the stream, or the connection is gone.
    func reset() {
        finish()
    }

    /// The stream can take a snapshot again (its data left, or the socket drained).
    func becameWritable() {
        if deferred {
            deferred = false
            drainSignals()
        }
    }

    // MARK: Opening

    private func open(_ headers: HPACKHeaders, context: ChannelHandlerContext) {
        guard headers.first(name: ":method") == "POST" else {
            return refuse(httpStatus: "405")
        }
        guard let contentType = headers.first(name: "content-type"), contentType.hasPrefix(GRPCWire.contentType) else {
            return refuse(httpStatus: "415")
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            var trailers = GRPCWire.trailers(
                .unimplemented, "compression \"\(encoding.prefix(64))\" is not supported; send identity", only: true)
            trailers.add(name: "grpc-accept-encoding", value: "identity")
            return end(trailers)
        }
        let path = headers.first(name: ":path") ?? ""
        guard let method = XDSMethod(path: path) else {
            return end(GRPCWire.trailers(.unimplemented, "unknown method \(path.prefix(256))", only: true))
        }
        if let reason = shared.hub.notReadyReason {
            shared.metrics.refused(reason: "not_ready")
            return end(GRPCWire.trailers(.unavailable, "not ready: \(reason)", only: true))
        }
        let peer = Self.describe(context.channel.remoteAddress)
        let identities = shared.options.nodeIdentity == nil ? [] : Self.peerIdentities(context.channel)
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
                    only: true))
        }
        shared.metrics.streamsChanged(shared.hub.streamCounts)
        phase = .open(session)
        connection?.send(headers: GRPCWire.responseHeaders(), endStream: false, on: self)
    }

    // MARK: Requests and signals

    private func readMessages() {
        while case .open(let session) = phase {
            let message: ByteBuffer
            do {
                guard let next = try deframer.next() else { return }
                message = next
            } catch {
                return fail(error.status, error.message)
            }
            switch session.receive(message) {
            case .send(let responses):
                write(responses, session: session, changeArrivedAt: nil)
            case .fail(let status, let text):
                return fail(status, text)
            }
        }
    }

    private func requestsEnded() {
        guard case .open = phase else { return }
        if deframer.pendingBytes > 0 {
            return fail(.internal, "the request stream ended inside a message")
        }
        end(GRPCWire.trailers(.ok, nil))
    }

    /// Applies what the hub signalled since the last time: shutdown, or the latest snapshot.
    fileprivate func drainSignals() {
        guard let connection, case .open(let session) = phase else { return }
        guard let signal = signals.take() else { return }
        switch signal {
        case .shutdown:
            fail(.unavailable, XDSError.shuttingDown.message)
        case .snapshot(let snapshot, let changeArrivedAt):
            guard connection.isWritable(self) else {
                // Taken again, with anything newer, once the client has read what is in flight.
                signals.putBack(signal)
                deferred = true
                return
            }
            switch session.refresh(snapshot) {
            case .send(let responses):
                if !responses.isEmpty { write(responses, session: session, changeArrivedAt: changeArrivedAt) }
            case .fail(let status, let text):
                fail(status, text)
            }
        }
        connection.flush()
    }

    // MARK: Writing

    /// Resource fields up to this size are copied into the message's first frame: a copy of a few KB
    /// costs less than a DATA frame of its own. Larger ones go out as the shared buffers they are.
    static let copyBelowBytes = 4096

    private func write(_ responses: [any OutboundMessage], session: WireSession, changeArrivedAt: ContinuousClock.Instant?) {
        guard let connection else { return }
        let controlPlane = shared.options.controlPlaneIdentifier
        var sizes: [Int] = []
        sizes.reserveCapacity(responses.count)
        for response in responses {
            let head = response.head(controlPlane: controlPlane)
            let tail = response.tail(controlPlane: controlPlane)
            let fields = response.resourceFields
            let fieldBytes = fields.reduce(0) { $0 + $1.readableBytes }
            let length = head.count + fieldBytes + tail.count
            if fieldBytes <= Self.copyBelowBytes {
                connection.sendMessage(length: length, on: self) { buffer in
                    buffer.writeBytes(head)
                    for field in fields { buffer.writeImmutableBuffer(field) }
                    buffer.writeBytes(tail)
                }
                sizes.append(length)
                continue
            }
            var first = connection.allocator.buffer(capacity: 5 + head.count)
            first.writeMultipleIntegers(UInt8(0), UInt32(length))
            first.writeBytes(head)
            if fields.count >= SharedBlocks.minimumResources {
                let block = shared.blocks.block(
                    delta: type(of: response).usesDeltaFields, resources: response.encodedResources, fields: fields)
                connection.send(data: first, on: self)
                connection.send(data: block, on: self)
                connection.send(data: connection.allocator.buffer(bytes: tail), on: self)
            } else {
                connection.send(data: first, on: self)
                for field in fields { connection.send(data: field, on: self) }
                connection.send(data: connection.allocator.buffer(bytes: tail), on: self)
            }
            sizes.append(length)
        }
        session.sent(responses, sizes: sizes, changeArrivedAt: changeArrivedAt)
    }

    // MARK: Ending

    private func fail(_ status: GRPCWire.Status, _ message: String) {
        let only: Bool
        if case .open = phase { only = false } else { only = true }
        end(GRPCWire.trailers(status, message, only: only))
    }

    /// Sends the trailers (END_STREAM), after any data still waiting for the window. No RST_STREAM
    /// follows: gRPC clients end their side when they read the status, and one that arrives while a
    /// client still reads the last message makes grpc-swift's client report the stream as closed
    /// unexpectedly instead of the status.
    private func end(_ trailers: HPACKHeaders) {
        guard !isClosed else { return }
        finish()
        connection?.send(headers: trailers, endStream: true, on: self)
    }

    private func refuse(httpStatus: String) {
        end([":status": httpStatus])
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
        deframer = GRPCWire.Deframer(maximumBytes: 0)
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
    static func peerIdentities(_ connection: any Channel) -> [String] {
        guard let handler = try? connection.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let peer = handler.peerCertificate, let certificate = try? Certificate(derEncoded: try peer.toDERBytes())
        else { return [] }
        return NodeIdentityRule.identities(of: certificate)
    }
}

/// What a stream has to send that waits for the client's window: DATA payloads in order (shared
/// buffers, not copies), and the trailers that follow them.
struct PendingData {
    private var payloads: [ByteBuffer] = []
    private var first = 0
    var trailers: HPACKHeaders?

    /// No DATA waits (trailers may).
    var isEmpty: Bool { first == payloads.count }

    mutating func append(_ payload: ByteBuffer) {
        payloads.append(payload)
    }

    /// Up to `limit` bytes of the first waiting payload; nil when none waits or `limit` is not positive.
    mutating func take(upTo limit: Int) -> ByteBuffer? {
        guard first < payloads.count, limit > 0 else { return nil }
        let chunk = payloads[first].readSlice(length: min(limit, payloads[first].readableBytes))!
        if payloads[first].readableBytes == 0 {
            payloads[first] = ByteBuffer()
            first += 1
            if first == payloads.count { (payloads, first) = ([], 0) }
        }
        return chunk
    }
}
