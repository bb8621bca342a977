import Logging
import NIOCore
import NIOHTTP2

/// Connection management for one HTTP/2 connection of the xDS listener, after the HTTP/2 handler (it
/// sees the connection's own frames and the streams opening and closing):
/// - keepalive: a PING every `keepaliveTime`; no answer within `keepaliveTimeout` closes the connection;
/// - client pings more often than every `minimumClientPingInterval` are strikes; the third gets a
///   GOAWAY (ENHANCE_YOUR_CALM, "too_many_pings", as gRPC servers send) and the connection closes;
/// - `ChannelShouldQuiesceEvent` (maximum connection age, shutdown): a GOAWAY naming the last stream
///   opened, so the client opens no more here; the connection closes when its streams have, or after
///   `gracePeriod`.
final class XDSConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    struct Options: Sendable {
        var keepaliveTime: Duration
        var keepaliveTimeout: Duration
        var minimumClientPingInterval: Duration = .seconds(5)
        var gracePeriod: Duration
    }

    private static let keepalivePing = HTTP2PingData(withInteger: 0x6c65_6761_7469_6f6e)  // "legation"

    private let options: Options
    private let logger: Logger
    private var pingTask: Scheduled<Void>?
    private var timeoutTask: Scheduled<Void>?
    private var graceTask: Scheduled<Void>?
    private var lastClientPing: NIODeadline?
    private var pingStrikes = 0
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID(0)
    private var goingAway = false

    init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { schedulePing(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        schedulePing(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .ping(let ping, let ack) = frame.payload {
            if ack {
                if ping == Self.keepalivePing {
                    timeoutTask?.cancel()
                    timeoutTask = nil
                }
            } else {
                policeClientPing(context: context)
            }
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let created as NIOHTTP2StreamCreatedEvent:
            openStreams += 1
            if created.streamID > lastStreamID { lastStreamID = created.streamID }
        case is StreamClosedEvent:
            openStreams -= 1
            if goingAway, openStreams <= 0 { context.close(promise: nil) }
        case is ChannelShouldQuiesceEvent:
            goAway(context: context, code: .noError, reason: nil)
            return
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func schedulePing(context: ChannelHandlerContext) {
        guard pingTask == nil else { return }
        let loop = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        pingTask = context.eventLoop.scheduleTask(in: .nanoseconds(options.keepaliveTime.nanoseconds)) {
            let (handler, context) = loop.value
            handler.pingTask = nil
            handler.sendPing(context: context)
        }
    }

    private func sendPing(context: ChannelHandlerContext) {
        guard context.channel.isActive else { return }
        context.writeAndFlush(
            wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(Self.keepalivePing, ack: false))), promise: nil)
        if timeoutTask == nil {
            let loop = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            timeoutTask = context.eventLoop.scheduleTask(in: .nanoseconds(options.keepaliveTimeout.nanoseconds)) {
                let (handler, context) = loop.value
                handler.logger.info(
                    "closing an xDS connection: keepalive ping unanswered",
                    metadata: ["peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"])
                handler.timeoutTask = nil
                context.close(promise: nil)
            }
        }
        schedulePing(context: context)
    }

    private func policeClientPing(context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        defer { lastClientPing = now }
        guard let last = lastClientPing, now - last < .nanoseconds(options.minimumClientPingInterval.nanoseconds) else { return }
        pingStrikes += 1
        if pingStrikes > 2 {
            logger.info(
                "closing an xDS connection: the client pings too often",
                metadata: ["peer": "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"])
            goAway(context: context, code: .enhanceYourCalm, reason: "too_many_pings")
            context.close(promise: nil)
        }
    }

    private func goAway(context: ChannelHandlerContext, code: HTTP2ErrorCode, reason: String?) {
        guard !goingAway else { return }
        goingAway = true
        let debug = reason.map { context.channel.allocator.buffer(string: $0) }
        context.writeAndFlush(
            wrapOutboundOut(
                HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: code, opaqueData: debug))),
            promise: nil)
        guard openStreams > 0 else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        graceTask = context.eventLoop.scheduleTask(in: .nanoseconds(options.gracePeriod.nanoseconds)) {
            channel.close(promise: nil)
        }
    }

    private func cancelTimers() {
        pingTask?.cancel()
        timeoutTask?.cancel()
        graceTask?.cancel()
        (pingTask, timeoutTask, graceTask) = (nil, nil, nil)
    }
}
