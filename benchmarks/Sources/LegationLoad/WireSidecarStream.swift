import EnvoyAPI
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import SwiftProtobuf
import Synchronization

/// The cheap way for a simulated sidecar to hold its ADS stream: gRPC over SwiftNIO's HTTP/2 directly,
/// the stream's logic run on its connection's event loop. The harness shares the machine with the
/// server it loads; with grpc-swift-2's client each sidecar's work measured about twice the server's
/// (benchmarks/README.md), so the harness, not the server, set the update latency.
enum WireSidecarStream {
    /// Opens a connection and one ADS stream to `host:port`; returns when the stream ends.
    static func run(
        host: String, port: Int, path: String, start: [[UInt8]], handle: @escaping @Sendable ([UInt8]) -> [[UInt8]], opened: @escaping @Sendable () -> Void
    ) async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let connection = try await ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var settings = NIOHTTP2Handler.ConnectionConfiguration()
                    settings.initialSettings = [
                        HTTP2Setting(parameter: .initialWindowSize, value: 1 << 24),
                        HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024),
                    ]
                    var stream = NIOHTTP2Handler.StreamConfiguration()
                    stream.targetWindowSize = 1 << 24
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: settings, streamConfiguration: stream) { $0.eventLoop.makeSucceededVoidFuture() }
                }
            }
            .connect(host: host, port: port).get()
        defer { connection.close(promise: nil) }
        let outcome = Outcome()
        let stream = try await connection.eventLoop.flatSubmit {
            let promise = connection.eventLoop.makePromise(of: (any Channel).self)
            do {
                let multiplexer = try connection.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
                multiplexer.createStreamChannel(promise: promise) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            Handler(authority: "\(host):\(port)", path: path, start: start, handle: handle, opened: opened, outcome: outcome))
                    }
                }
            } catch {
                promise.fail(error)
            }
            return promise.futureResult
        }.get()
        try await withTaskCancellationHandler {
            try await stream.closeFuture.get()
        } onCancel: {
            stream.close(promise: nil)
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

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        private let authority: String
        private let path: String
        private let start: [[UInt8]]
        private let handle: @Sendable ([UInt8]) -> [[UInt8]]
        private let opened: @Sendable () -> Void
        private var buffered = ByteBuffer()
        private let outcome: Outcome

        init(
            authority: String, path: String, start: [[UInt8]], handle: @escaping @Sendable ([UInt8]) -> [[UInt8]], opened: @escaping @Sendable () -> Void,
            outcome: Outcome
        ) {
            self.outcome = outcome
            self.authority = authority
            self.path = path
            self.start = start
            self.handle = handle
            self.opened = opened
        }

        func channelActive(context: ChannelHandlerContext) {
            let headers: HPACKHeaders = [
                ":method": "POST", ":scheme": "http", ":path": path, ":authority": authority, "content-type": "application/grpc", "te": "trailers",
            ]
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            send(start, context: context)
            opened()
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .data(let frame):
                if case .byteBuffer(var bytes) = frame.data { buffered.writeBuffer(&bytes) }
                var requests: [[UInt8]] = []
                while buffered.readableBytes >= 5, let length = buffered.getInteger(at: buffered.readerIndex + 1, as: UInt32.self),
                    buffered.readableBytes >= 5 + Int(length)
                {
                    buffered.moveReaderIndex(forwardBy: 5)
                    let message = buffered.readBytes(length: Int(length)) ?? []
                    requests += handle(message)
                }
                buffered.discardReadBytes()
                if !requests.isEmpty { send(requests, context: context) }
            case .headers(let headers) where headers.endStream:
                let status = headers.headers.first(name: "grpc-status") ?? "?"
                outcome.fail("the stream ended: grpc-status \(status) \(headers.headers.first(name: "grpc-message") ?? "")")
                context.close(promise: nil)
            case .rstStream(let code):
                outcome.fail("the stream was reset: \(code)")
                context.close(promise: nil)
            default:
                break
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            outcome.fail("\(error)")
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            outcome.fail("the connection closed")
            context.fireChannelInactive()
        }

        private func send(_ messages: [[UInt8]], context: ChannelHandlerContext) {
            var buffer = context.channel.allocator.buffer(capacity: messages.reduce(0) { $0 + 5 + $1.count })
            for message in messages {
                buffer.writeMultipleIntegers(UInt8(0), UInt32(message.count))
                buffer.writeBytes(message)
            }
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
        }
    }
}
