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
    ///   - routes: extra routes, open like the probes and `/metrics`.
    ///   - protectedRoutes: routes that, when `bearerToken` returns a token, answer only requests
    ///     carrying `Authorization: Bearer <token>` (401 otherwise). Probes and `/metrics` stay open.
    ///   - bearerToken: read on each protected request (so a rotated token file takes effect at once).
    public static func start(
        host: String, port: Int, registry: PrometheusCollectorRegistry, ready: @escaping @Sendable () async -> String?,
        routes: [String: Route] = [:], protectedRoutes: [String: Route] = [:], bearerToken: (@Sendable () -> String?)? = nil
    ) async throws -> AdminServer {
        var table = routes
        for (path, route) in protectedRoutes {
            table[path] = route
        }
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
        let guarded = Set(protectedRoutes.keys)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(routes: frozen, guarded: guarded, bearerToken: bearerToken))
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
        let guarded: Set<String>
        let bearerToken: (@Sendable () -> String?)?
        init(routes: [String: Route], guarded: Set<String>, bearerToken: (@Sendable () -> String?)?) {
            self.routes = routes
            self.guarded = guarded
            self.bearerToken = bearerToken
        }

        /// Whether a request may use a guarded route: no token configured, or the right one presented
        /// (compared in constant time).
        func authorized(_ head: HTTPRequestHead) -> Bool {
            guard let expected = bearerToken?(), !expected.isEmpty else { return true }
            guard let header = head.headers.first(name: "Authorization"), header.hasPrefix("Bearer ") else { return false }
            let presented = Array(header.dropFirst("Bearer ".count).utf8)
            let wanted = Array(expected.utf8)
            guard presented.count == wanted.count else { return false }
            return zip(presented, wanted).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let path = String(head.uri.prefix { $0 != "?" })
            let route = head.method == .GET || head.method == .HEAD ? routes[path] : nil
            let denied = route != nil && guarded.contains(path) && !authorized(head)
            let channel = context.channel
            let version = head.version
            let promise = context.eventLoop.makePromise(of: Response.self)
            promise.completeWithTask {
                guard let route else { return Response(status: 404, body: "not found: \(path.prefix(200))\n") }
                guard !denied else {
                    return Response(status: 401, body: "this endpoint needs Authorization: Bearer <token> (the configured token file)\n")
                }
                return await route()
            }
            promise.futureResult.whenSuccess { response in
                var headers = HTTPHeaders([
                    ("Content-Type", response.contentType), ("Content-Length", String(response.body.count)),
                    ("Cache-Control", "no-store")
                ])
                if response.status == 401 { headers.add(name: "WWW-Authenticate", value: "Bearer") }
                channel.write(
                    HTTPServerResponsePart.head(
                        HTTPResponseHead(version: version, status: .init(statusCode: response.status), headers: headers)), promise: nil)
                channel.write(HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: response.body))), promise: nil)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
            }
        }
    }
}
