import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Metrics
import NIOCertificateReloading
import NIOCore
import NIOSSL
import ServiceLifecycle
import Shared

/// The xDS gRPC server, either transport, behind one face.
enum XDSGRPCServer: Sendable {
    case nio(XDSListener, TimedCertificateReloader?)
    case grpcSwift(GRPCServer<HTTP2ServerTransport.Posix>, HTTP2ServerTransport.Posix, TimedCertificateReloader?)

    var reloader: TimedCertificateReloader? {
        switch self {
        case .nio(_, let reloader), .grpcSwift(_, _, let reloader): reloader
        }
    }

    /// Serves until shut down; calls `bound` with the port once listening.
    func serve(bound: @escaping @Sendable (Int) -> Void) async throws {
        switch self {
        case .nio(let listener, _):
            let port: Int
            do {
                port = try await listener.bind()
            } catch {
                await listener.close()  // its event loops stop with it
                throw XDSServerStartError("cannot listen for xDS on the configured address: \(error)")
            }
            bound(port)
            // Runs until cancelled (the runtime's group ends at shutdown), then closes what is left.
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            await listener.close()
        case .grpcSwift(let server, let transport, _):
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                if let address = try? await transport.listeningAddress, let port = address.ipv4?.port ?? address.ipv6?.port { bound(port) }
            }
        }
    }

    func beginGracefulShutdown() {
        switch self {
        case .nio(let listener, _): listener.beginGracefulShutdown()
        case .grpcSwift(let server, _, _): server.beginGracefulShutdown()
        }
    }
}
