import EnvoyAPI
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Shared
import SwiftProtobuf
import Synchronization

/// The cheap way for a simulated sidecar to hold its ADS stream: gRPC over SwiftNIO's HTTP/2 directly,
/// the stream's logic run on its connection's event loop. The harness shares the machine with the
/// server it loads; with grpc-swift-2's client each sidecar's work measured about twice the server's
/// (benchmarks/README.md), so the harness, not the server, set the update latency.
enum WireSidecarStream {
    /// Opens a connection and one ADS stream to `host:port`; returns when the stream ends.
    static func run(
        host: String, port: Int, path: String, start: [[UInt8]], summary: @escaping @Sendable () -> ResponseSummary,
        handle: @escaping @Sendable (ResponseSummary) -> [[UInt8]], opened: @escaping @Sendable () -> Void
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
                        HTTP2Setting(parameter: .maxHeaderListSize, value: 16 * 1024)
                    ]
                    var stream = NIOHTTP2Handler.StreamConfiguration()
                    stream.targetWindowSize = 1 << 24
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: settings, streamConfiguration: stream
                    ) { $0.eventLoop.makeSucceededVoidFuture() }
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
                            Handler(
                                authority: "\(host):\(port)", path: path, start: start, summary: summary, handle: handle, opened: opened,
                                outcome: outcome))
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
        private let summary: @Sendable () -> ResponseSummary
        private let handle: @Sendable (ResponseSummary) -> [[UInt8]]
        private let opened: @Sendable () -> Void
        /// A response is read field by field as its frames arrive: only the field being read is held
        /// (a storm's 3 MB answers, held whole by each of 1,000 sidecars, made the harness's time page
        /// faults). `prefix`: the gRPC length prefix being read; `remaining`: bytes of the message not yet
        /// read; `pending`: bytes of the field being read.
        private var prefix = ByteBuffer()
        private var reading: ResponseSummary?
        private var remaining = 0
        private var pending: [UInt8] = []
        private let outcome: Outcome

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
            let headers: HPACKHeaders = [
                ":method": "POST", ":scheme": "http", ":path": path, ":authority": authority, "content-type": "application/grpc",
                "te": "trailers"
            ]
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            send(start, context: context)
            opened()
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .data(let frame):
                guard case .byteBuffer(var bytes) = frame.data else { return }
                var requests: [[UInt8]] = []
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

        private func finishMessage(_ requests: inout [[UInt8]]) {
            guard let response = reading else { return }
            reading = nil
            pending.removeAll(keepingCapacity: true)
            requests += handle(response)
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
