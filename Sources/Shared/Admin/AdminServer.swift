import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// The admin HTTP endpoint every Legation process serves (plain HTTP on its own port):
/// `/healthz` (the process is alive: never depends on Redis or the API server), `/readyz` (the role's
/// own readiness), `/metrics` (Prometheus text), plus any extra read-only routes a role adds.
public final class AdminServer: Sendable {
    /// A route's answer: status, content type, body.
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]

        public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = Array(body.utf8)
        }

        public init(status: Int = 200, contentType: String, bytes: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = bytes
        }
    }

    public typealias Route = @Sendable () async -> Response

    private let channel: any Channel
    /// The bound address (useful with port 0).
    public let port: Int

    /// Binds `host:port` (port 0 picks a free one).
    /// - Parameters:
    ///   - ready: nil when ready; else the reason, answered with 503.
    public static func start(
        host: String, port: Int, registry: PrometheusCollectorRegistry, ready: @escaping @Sendable () async -> String?,
        routes: [String: Route] = [:]
    ) async throws -> AdminServer {
        var table = routes
        table["/healthz"] = { Response(body: "ok\n") }
        table["/readyz"] = {
            if let reason = await ready() { return Response(status: 503, body: "not ready: \(reason)\n") }
            return Response(body: "ready\n")
        }
        table["/metrics"] = {
            var response = Response(contentType: "text/plain; version=0.0.4; charset=utf-8", body: "")
            registry.emit(into: &response.body)
            return response
        }
        let frozen = table
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(routes: frozen))
                }
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        return AdminServer(channel: channel, port: channel.localAddress?.port ?? port)
    }

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.port = port
    }

    public func close() async {
        try? await channel.close()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let routes: [String: Route]
        init(routes: [String: Route]) { self.routes = routes }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let path = String(head.uri.prefix { $0 != "?" })
            let route = head.method == .GET || head.method == .HEAD ? routes[path] : nil
            let channel = context.channel
            let version = head.version
            let promise = context.eventLoop.makePromise(of: Response.self)
            promise.completeWithTask {
                guard let route else { return Response(status: 404, body: "not found: \(path.prefix(200))\n") }
                return await route()
            }
            promise.futureResult.whenSuccess { response in
                let headers = HTTPHeaders([
                    ("Content-Type", response.contentType), ("Content-Length", String(response.body.count)),
                    ("Cache-Control", "no-store"),
                ])
                channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: .init(statusCode: response.status), headers: headers)), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: response.body))), promise: nil)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
            }
        }
    }
}
