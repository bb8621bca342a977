import AdminHTTP
import Prometheus
import Shared

/// A tiny upstream for end-to-end tests: answers `GET /` with 200 and its name, so a test can tell which
/// "pod" Envoy picked (it is an `AdminServer` with one route). Binds any loopback address: 127.0.0.2 is
/// another host than 127.0.0.1 to Envoy, which lets pods share a port number as in a real cluster.
public final class NamedHTTPServer: Sendable {
    public let name: String
    public let host: String
    public let port: Int
    private let server: AdminServer

    public static func start(name: String, host: String = "127.0.0.1", port: Int = 0) async throws -> NamedHTTPServer {
        let server = try await AdminServer.start(
            host: host, port: port, registry: PrometheusCollectorRegistry(), ready: { nil },
            routes: ["/": { AdminServer.Response(body: name) }])
        return NamedHTTPServer(name: name, host: host, port: server.port, server: server)
    }

    private init(name: String, host: String, port: Int, server: AdminServer) {
        self.name = name
        self.host = host
        self.port = port
        self.server = server
    }

    public func close() async {
        await server.close()
    }
}
