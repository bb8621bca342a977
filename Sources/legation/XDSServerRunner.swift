import AdminHTTP
import Foundation
import Logging
import Prometheus
import Server
import ServiceLifecycle
import Shared

/// Builds the xds-server's graph and runs it: store reader → pipeline → gRPC, plus admin HTTP with the
/// debug views. Shutdown (SIGTERM/SIGINT): refuse new streams, end open ones with UNAVAILABLE (clients
/// reconnect to another replica), close connections within the grace period, then close the store.
struct XDSServerRunner {
    let reader: any EndpointStoreReader
    let options: XDSServerRuntime.Options
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    /// Where the admin (probes, metrics) and debug (`/debug/*`) endpoints listen.
    struct AdminAddresses {
        var adminHost = "0.0.0.0", adminPort = 9091
        var debugHost = "127.0.0.1", debugPort = 9092
        /// When set, `/debug/*` needs `Authorization: Bearer <the file's content>`.
        var debugTokenFile: String?
    }

    func run(_ addresses: AdminAddresses, onClose: @escaping @Sendable () async -> Void = {}) async throws {
        let runtime = XDSServerRuntime(reader: reader, options: options, logger: logger)
        let admin = try await Self.startAdmin(runtime: runtime, host: addresses.adminHost, port: addresses.adminPort, registry: registry)
        let debug = try await Self.startDebug(
            runtime: runtime, host: addresses.debugHost, port: addresses.debugPort, registry: registry, tokenFile: addresses.debugTokenFile)
        logger.info("admin HTTP listening", metadata: ["port": "\(admin.port)", "debug": "\(addresses.debugHost):\(debug.port)"])
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: runtime)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await admin.close()
            await debug.close()
            await onClose()
            throw error
        }
        await admin.close()
        await debug.close()
        await onClose()
    }

    /// /healthz, /readyz (ready = streams accepted), /metrics; with `includeDebug` (the local demo) the
    /// debug views too.
    static func startAdmin(
        runtime: XDSServerRuntime, host: String, port: Int, registry: PrometheusCollectorRegistry, includeDebug: Bool = false
    ) async throws -> AdminServer {
        let hub = runtime.hub
        return try await AdminServer.start(
            host: host, port: port, registry: registry, ready: { hub.notReadyReason }, routes: includeDebug ? debugRoutes(runtime) : [:])
    }

    /// The debug views on their own listener (localhost by default), behind an optional bearer token
    /// read from `tokenFile` on each request (a rotated Secret takes effect at once).
    static func startDebug(
        runtime: XDSServerRuntime, host: String, port: Int, registry: PrometheusCollectorRegistry, tokenFile: String?
    ) async throws -> AdminServer {
        let hub = runtime.hub
        var token: (@Sendable () -> String?)?
        if let tokenFile {
            token = { Self.readToken(tokenFile) }
        }
        return try await AdminServer.start(
            host: host, port: port, registry: registry, ready: { hub.notReadyReason }, protectedRoutes: debugRoutes(runtime),
            bearerToken: token)
    }

    /// The token in `file`; if the file cannot be read, a value no request can present (so the debug
    /// views stay closed rather than opening).
    static func readToken(_ file: String) -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return "\u{0}unreadable" }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? "\u{0}empty" : token
    }

    /// /debug/clients, /debug/resources, /debug/sources.
    static func debugRoutes(_ runtime: XDSServerRuntime) -> [String: AdminServer.Route] {
        let hub = runtime.hub
        let pipeline = runtime.pipeline
        return [
            "/debug/clients": {
                AdminServer.Response(contentType: "application/json", bytes: DebugViews.json(DebugViews.clients(hub)))
            },
            "/debug/resources": {
                AdminServer.Response(contentType: "application/json", bytes: DebugViews.json(DebugViews.resources(hub.snapshot)))
            },
            "/debug/sources": {
                AdminServer.Response(
                    contentType: "application/json", bytes: DebugViews.json(DebugViews.sources(await pipeline.sourceStatuses)))
            }
        ]
    }
}
