import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny HTTP/1.1 upstream for end-to-end tests: answers every request with 200 and its name, so a
/// test can tell which "pod" Envoy picked. Binds any loopback address (127.0.0.2 is a different host
/// than 127.0.0.1 to Envoy, which lets two pods share a port number like in a real cluster).
public final class NamedHTTPServer: Sendable {
    public let name: String
    public let host: String
    public let port: Int
    private let channel: any Channel

    public static func start(name: String, host: String = "127.0.0.1", port: Int = 0) async throws -> NamedHTTPServer {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(name: name))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        return NamedHTTPServer(name: name, host: host, port: channel.localAddress?.port ?? port, channel: channel)
    }

    private init(name: String, host: String, port: Int, channel: any Channel) {
        self.name = name
        self.host = host
        self.port = port
        self.channel = channel
    }

    public func close() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let name: String
        init(name: String) { self.name = name }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .end = unwrapInboundIn(data) else { return }
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain")
            headers.add(name: "content-length", value: String(name.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: name)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
