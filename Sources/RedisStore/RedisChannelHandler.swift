import NIOCore
import Shared

/// Commands written on a Redis connection: their encoded bytes and one promise per command, completed in
/// order as replies arrive (Redis answers a connection's commands in the order it received them).
struct RedisRequest {
    var bytes: ByteBuffer
    var promises: [EventLoopPromise<RESPValue>]
}

/// Pipelines commands over one channel and matches replies to them, decoding with hiredis's reader.
/// Any transport or protocol error fails every outstanding command and closes the channel: after it,
/// which reply belongs to which command is unknown.
final class RedisChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisRequest
    typealias OutboundOut = ByteBuffer

    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>()
    private let decoder: RESPDecoder
    private var failure: (any Error)?

    init(maximumReplyBytes: Int) {
        decoder = RESPDecoder(maximumReplyBytes: maximumReplyBytes)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.promises.forEach { $0.fail(failure) }
            promise?.fail(failure)
            return
        }
        pending.append(contentsOf: request.promises)
        context.write(wrapOutboundOut(request.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try decoder.feed(unwrapInboundIn(data))
            while let reply = try decoder.next() {
                guard let promise = pending.popFirst() else {
                    throw StoreError(.protocolError, "Redis sent a reply nobody asked for")
                }
                promise.succeed(reply)
            }
        } catch let error as RESPDecoder.Failure {
            fail(context: context, StoreError(.protocolError, "unreadable reply from Redis: \(error)"))
        } catch {
            fail(context: context, error)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, error as? StoreError ?? StoreError(.unavailable, "Redis connection failed", cause: error))
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(context: context, StoreError(.unavailable, "Redis connection closed"))
        context.fireChannelInactive()
    }

    private func fail(context: ChannelHandlerContext, _ error: any Error) {
        if failure == nil { failure = error }
        while let promise = pending.popFirst() { promise.fail(error) }
        context.close(promise: nil)
    }
}
