import ArgumentParser
import Foundation
import Ingestor
import Logging
import ServiceLifecycle
import Shared

/// `legation ingestor`: publishes one source cluster's endpoints to Redis. Run two per source (the
/// second waits as standby on the lease). This release reads a file source; the Kubernetes source
/// follows (docs/file-source.md).
struct IngestorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingestor",
        abstract: "Publish one source's endpoints to Redis (active/standby on a lease).")

    @Option(help: ArgumentHelp("YAML file of services and endpoints to publish; re-read when it changes.", valueName: "path"))
    var sourceFile: String

    @Option(help: ArgumentHelp("Lease holder name (unique per instance). Default: hostname-pid.", valueName: "name"))
    var holder: String?

    @Option(help: ArgumentHelp("Lease time-to-live in seconds: how soon a standby takes over from a dead writer.", valueName: "seconds"))
    var leaseTTL: Double = 15

    @Option(help: ArgumentHelp("How often to check the source file for changes, in seconds.", valueName: "seconds"))
    var pollInterval: Double = 1

    @OptionGroup var redis: RedisOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log format: text or json.")
    var logFormat: LogFormat = .text

    func validate() throws {
        guard leaseTTL >= 1, leaseTTL <= 600 else { throw ValidationError("--lease-ttl must be 1...600 seconds") }
        guard pollInterval >= 0.05, pollInterval <= 3600 else { throw ValidationError("--poll-interval must be 0.05...3600 seconds") }
    }

    func run() async throws {
        LoggingSetup.bootstrap(level: logLevel, json: logFormat == .json)
        let logger = Logger(label: "legation.ingestor")
        guard let redisConfiguration = try redis.configuration(clientName: "legation-ingestor") else {
            throw ValidationError("the ingestor needs --redis-url (or LEGATION_REDIS_URL)")
        }
        let text: String
        do {
            text = try String(contentsOfFile: sourceFile, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read --source-file \(sourceFile): \(error.localizedDescription)")
        }
        let parsed: FileSourceParser.Parsed
        do {
            parsed = try FileSourceParser.parse(text)
        } catch {
            throw ValidationError("\(sourceFile): \(error.message)")
        }
        let holder = self.holder ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        var options = EndpointPublisher.Options()
        options.leaseTTL = .milliseconds(Int64(leaseTTL * 1000))
        options.heartbeatInterval = options.leaseTTL / 3

        let store = RedisEndpointStore(redisConfiguration, logger: logger)
        let publisher = EndpointPublisher(store: store, source: parsed.source, holder: holder, options: options, logger: logger)
        let watcher = FileSourceWatcher(
            path: sourceFile, publisher: publisher, pollInterval: .milliseconds(Int64(pollInterval * 1000)), logger: logger)
        logger.info("ingestor starting", metadata: [
            "source": "\(parsed.source)", "holder": "\(holder)", "redis": "\(redisConfiguration.redactedURL)",
        ])
        let group = ServiceGroup(
            services: [CancellableService { await publisher.run() }, CancellableService { await watcher.run() }],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await store.close()
    }
}

enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Runs a cancellation-driven loop as a lifecycle service: graceful shutdown cancels it, and the loop
/// finishes its own shutdown work (flush, release the lease) before returning.
struct CancellableService: Service {
    let body: @Sendable () async -> Void

    init(_ body: @escaping @Sendable () async -> Void) { self.body = body }

    func run() async throws {
        try await cancelWhenGracefulShutdown { await body() }
    }
}
