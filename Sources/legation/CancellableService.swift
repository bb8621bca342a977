import ArgumentParser
import Foundation
import Ingestor
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Shared

/// Runs a cancellation-driven loop as a lifecycle service: graceful shutdown cancels it, and the loop
/// finishes its own shutdown work (flush, release the lease) before returning.
struct CancellableService: Service {
    let body: @Sendable () async -> Void

    init(_ body: @escaping @Sendable () async -> Void) { self.body = body }

    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}
