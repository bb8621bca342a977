import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import RedisStore
import Server
import Shared

/// `legation xds-server`: serves Envoy (and proxyless gRPC) over xDS from every source cluster in Redis.
/// Stateless: run as many replicas as the sidecars need; each gives the same answers.
struct XDSServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xds-server",
        abstract: "Serve every source cluster's endpoints from Redis to Envoy over xDS (ADS, CDS, EDS).",
        discussion: "Configuration comes from --config, then the flags below override it. See docs/configuration.md.")

    @Option(help: ArgumentHelp("YAML configuration file.", valueName: "path")) var config: String?
    @Flag(help: "Validate the configuration, print it, and exit (0 when usable).") var checkConfig = false
    @Option(help: ArgumentHelp("xDS gRPC listen address (default 0.0.0.0:18000).", valueName: "host:port")) var listen: String?
    @Option(help: ArgumentHelp("Admin HTTP address for /healthz, /readyz, /metrics (default 0.0.0.0:9091).", valueName: "host:port"))
    var adminAddress: String?
    @Option(help: ArgumentHelp("Debug HTTP address for /debug/* (default 127.0.0.1:9092: this host only).", valueName: "host:port"))
    var debugAddress: String?
    @Option(help: ArgumentHelp("A file holding a bearer token /debug/* requires (re-read on each request).", valueName: "path"))
    var debugTokenFile: String?
    @Option(help: ArgumentHelp("A source whose sync canary readiness waits for (repeatable).", valueName: "name")) var source: [String] = []
    @Option(help: ArgumentHelp("Become ready after this long even without every source's canary (default 30).", valueName: "seconds"))
    var readinessTimeout: Double?
    @Option(help: ArgumentHelp("Push once no change came for this long (default 10).", valueName: "ms")) var debounceQuiet: Double?
    @Option(help: ArgumentHelp("Push at the latest this long after the first change (default 100).", valueName: "ms")) var debounceMax:
        Double?
    @Option(help: ArgumentHelp("Most open xDS streams on this replica (default 10000).", valueName: "count")) var maxStreams: Int?
    @Option(
        help: ArgumentHelp(
            "Close connections after this age ± 10% so new replicas get clients; 0 never (default 1800).", valueName: "seconds"))
    var maxConnectionAge: Double?
    @Option(help: ArgumentHelp("This replica's name in responses and logs (default hostname).", valueName: "name")) var identifier: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String?
    @Option(help: "Log format: text or json.") var logFormat: String?
    @OptionGroup var redis: RedisOptions

    func run() async throws {
        let settings = try effectiveConfiguration()
        let problems =
            settings.problems() + (settings.redis?.url == nil ? ["redis.url is not set (or --redis-url, LEGATION_REDIS_URL)"] : [])
        guard problems.isEmpty else {
            throw ValidationError("the configuration is not usable:\n  - " + problems.joined(separator: "\n  - "))
        }
        if checkConfig {
            let options = settings.runtimeOptions()
            print(
                "configuration OK: xDS on \(options.serving.host):\(options.serving.port) (\(options.serving.transport.rawValue) listener), Redis \((try? RedisConfiguration(url: settings.redis!.url!).redactedURL) ?? "?"), waiting for sources \(settings.sources ?? [])"
            )
            return
        }
        LoggingSetup.bootstrap(level: Logger.Level(rawValue: settings.log?.level ?? "info") ?? .info, json: settings.log?.format == "json")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "legation.xds-server")
        let redisSettings = settings.redis ?? RedisSettings()
        let store = RedisEndpointStore(
            try redisSettings.configuration(clientName: "legation-xds-server"), options: redisSettings.storeOptions, logger: logger)
        var addresses = XDSServerRunner.AdminAddresses()
        (addresses.adminHost, addresses.adminPort) = splitHostAndPort(settings.admin?.address ?? "0.0.0.0:9091")!
        (addresses.debugHost, addresses.debugPort) = splitHostAndPort(settings.debug?.address ?? "127.0.0.1:9092")!
        addresses.debugTokenFile = settings.debug?.tokenFile
        try await XDSServerRunner(reader: store, options: settings.runtimeOptions(), registry: registry, logger: logger)
            .run(addresses, onClose: { await store.close() })
    }

    func effectiveConfiguration() throws -> XDSServerConfiguration {
        var settings = XDSServerConfiguration()
        if let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw ValidationError("cannot read --config \(config)")
            }
            do { settings = try XDSServerConfiguration.parse(yaml: text) } catch { throw ValidationError("\(config): \(error.message)") }
        }
        if !source.isEmpty { settings.sources = source }
        if let readinessTimeout { settings.readinessTimeoutSeconds = readinessTimeout }
        var grpc = settings.grpc ?? XDSServerConfiguration.GRPC()
        if let listen { grpc.address = listen }
        if let maxStreams { grpc.maxStreams = maxStreams }
        if let maxConnectionAge { grpc.maxConnectionAgeSeconds = maxConnectionAge }
        settings.grpc = grpc
        if debounceQuiet != nil || debounceMax != nil {
            var debounce = settings.debounce ?? XDSServerConfiguration.Debounce()
            if let debounceQuiet { debounce.quietMilliseconds = debounceQuiet }
            if let debounceMax { debounce.maximumMilliseconds = debounceMax }
            settings.debounce = debounce
        }
        settings.identifier = identifier ?? settings.identifier ?? ProcessInfo.processInfo.hostName
        var redisSettings = redis.settings(over: settings.redis ?? RedisSettings())
        if redisSettings.url == nil { redisSettings.url = ProcessInfo.processInfo.environment["LEGATION_REDIS_URL"] }
        settings.redis = redisSettings
        if let adminAddress { settings.admin = XDSServerConfiguration.Admin(address: adminAddress) }
        if debugAddress != nil || debugTokenFile != nil {
            var debug = settings.debug ?? XDSServerConfiguration.Debug()
            if let debugAddress { debug.address = debugAddress }
            if let debugTokenFile { debug.tokenFile = debugTokenFile }
            settings.debug = debug
        }
        if logLevel != nil || logFormat != nil {
            settings.log = XDSServerConfiguration.Log(level: logLevel ?? settings.log?.level, format: logFormat ?? settings.log?.format)
        }
        return settings
    }
}
