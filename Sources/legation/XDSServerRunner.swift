import Logging
import Prometheus
import ServiceLifecycle
import Server
import Shared

/// Builds the xds-server's graph and runs it: store reader → pipeline → gRPC, plus admin HTTP with the
/// debug views. Shutdown (SIGTERM/SIGINT): refuse new streams, end open ones with UNAVAILABLE (clients
/// reconnect to another replica), close connections within the grace period, then close the store.
struct XDSServerRunner {
    let reader: any EndpointStoreReader
    let options: XDSServerRuntime.Options
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    func run(adminHost: String, adminPort: Int, onClose: @escaping @Sendable () async -> Void = {}) async throws {
        let runtime = XDSServerRuntime(reader: reader, options: options, logger: logger)
        let admin = try await Self.startAdmin(runtime: runtime, host: adminHost, port: adminPort, registry: registry)
        logger.info("admin HTTP listening", metadata: ["port": "\(admin.port)"])
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: runtime)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            await admin.close()
            await onClose()
            throw error
        }
        await admin.close()
        await onClose()
    }

    /// /healthz, /readyz (ready = streams accepted), /metrics, /debug/clients, /debug/resources, /debug/sources.
    static func startAdmin(runtime: XDSServerRuntime, host: String, port: Int, registry: PrometheusCollectorRegistry) async throws -> AdminServer {
        let hub = runtime.hub
        let pipeline = runtime.pipeline
        return try await AdminServer.start(
            host: host, port: port, registry: registry,
            ready: { hub.notReadyReason },
            routes: [
                "/debug/clients": {
                    AdminServer.Response(contentType: "application/json", bytes: DebugViews.json(DebugViews.clients(hub)))
                },
                "/debug/resources": {
                    AdminServer.Response(contentType: "application/json", bytes: DebugViews.json(DebugViews.resources(hub.snapshot)))
                },
                "/debug/sources": {
                    AdminServer.Response(contentType: "application/json", bytes: DebugViews.json(DebugViews.sources(await pipeline.sourceStatuses)))
                },
            ])
    }
}
