import ArgumentParser
import Foundation
import Ingestor
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Shared

/// `legation ingestor`: publishes one source cluster's endpoints to Redis. Run two per source (the
/// second waits as standby on the lease). The source is a Kubernetes cluster (kubeconfig or in-cluster)
/// or a YAML file. Configuration: a YAML file (docs/configuration.md), overridden by these flags.
struct IngestorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingestor",
        abstract: "Publish one source cluster's endpoints to Redis (active/standby on a lease).",
        discussion: "Configuration comes from --config, then the flags below override it. See docs/configuration.md.")

    @Option(help: ArgumentHelp("YAML configuration file.", valueName: "path")) var config: String?
    @Flag(help: "Validate the configuration, print it, and exit (0 when usable).") var checkConfig = false

    @Option(help: ArgumentHelp("Source cluster name (a DNS label; part of every Redis key).", valueName: "name")) var source: String?
    @Option(help: ArgumentHelp("Kubeconfig of the cluster to watch.", valueName: "path")) var kubeconfig: String?
    @Option(help: ArgumentHelp("Kubeconfig context (default: its current-context).", valueName: "name")) var context: String?
    @Flag(help: "Watch the cluster this pod runs in (service account token and CA).") var inCluster = false
    @Flag(help: "Let the kubeconfig run exec credential plugins.") var allowExec = false
    @Flag(help: "Let the kubeconfig read local files (token files, keys, CAs).") var allowFileReferences = false
    @Option(help: ArgumentHelp("Watch only this namespace (repeatable; default: all).", valueName: "namespace")) var namespace: [String] =
        []
    @Option(help: ArgumentHelp("Export only services matching this label selector.", valueName: "selector")) var labelSelector: String?
    @Flag(help: "Export only services annotated legation.io/export: \"true\".") var requireExportAnnotation = false
    @Option(help: ArgumentHelp("Publish this YAML file of endpoints instead of a cluster (docs/file-source.md).", valueName: "path"))
    var sourceFile: String?
    @Option(help: ArgumentHelp("Lease holder name, unique per instance (default: hostname-pid).", valueName: "name")) var holder: String?
    @Option(help: ArgumentHelp("Lease time-to-live: how soon a standby takes over from a dead writer.", valueName: "seconds")) var leaseTTL:
        Double?
    @Option(help: ArgumentHelp("Admin HTTP address for /healthz, /readyz, /metrics (default 0.0.0.0:9090).", valueName: "host:port"))
    var adminAddress: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.") var logLevel: String?
    @Option(help: "Log format: text or json.") var logFormat: String?
    @OptionGroup var redis: RedisOptions

    func run() async throws {
        let settings = try effectiveConfiguration()
        let problems = settings.problems()
        guard problems.isEmpty else {
            throw ValidationError("the configuration is not usable:\n  - " + problems.joined(separator: "\n  - "))
        }
        if checkConfig {
            print(
                "configuration OK: source \(settings.source ?? "(from the file)") from \(settings.kubernetes != nil ? "Kubernetes" : "file \(settings.file!.path)"), Redis \((try? RedisConfiguration(url: settings.redis!.url!).redactedURL) ?? "?")"
            )
            return
        }
        LoggingSetup.bootstrap(level: Logger.Level(rawValue: settings.log?.level ?? "info") ?? .info, json: settings.log?.format == "json")
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "legation.ingestor")
        try await IngestorRunner(settings: settings, registry: registry, logger: logger).run()
    }

    /// The file's configuration with the flags and environment laid over it.
    func effectiveConfiguration() throws -> IngestorConfiguration {
        var settings = IngestorConfiguration()
        if let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                throw ValidationError("cannot read --config \(config)")
            }
            do { settings = try IngestorConfiguration.parse(yaml: text) } catch { throw ValidationError("\(config): \(error.message)") }
        }
        if let source { settings.source = source }
        let kubernetesFlags =
            kubeconfig != nil || inCluster || !namespace.isEmpty || labelSelector != nil
            || requireExportAnnotation || context != nil
        if kubernetesFlags || settings.kubernetes != nil {
            var kubernetes = settings.kubernetes ?? IngestorConfiguration.Kubernetes()
            if let kubeconfig { kubernetes.kubeconfig = kubeconfig }
            if let context { kubernetes.context = context }
            if inCluster { kubernetes.inCluster = true }
            if allowExec { kubernetes.allowExec = true }
            if allowFileReferences { kubernetes.allowFileReferences = true }
            if !namespace.isEmpty { kubernetes.namespaces = namespace }
            if let labelSelector { kubernetes.labelSelector = labelSelector }
            if requireExportAnnotation { kubernetes.requireExportAnnotation = true }
            settings.kubernetes = kubernetes
        }
        if let sourceFile {
            settings.file = IngestorConfiguration.File(path: sourceFile, pollIntervalSeconds: settings.file?.pollIntervalSeconds)
        }
        var redisSettings = redis.settings(over: settings.redis ?? RedisSettings())
        if redisSettings.url == nil { redisSettings.url = ProcessInfo.processInfo.environment["LEGATION_REDIS_URL"] }
        settings.redis = redisSettings
        if holder != nil || leaseTTL != nil {
            settings.lease = IngestorConfiguration.Lease(
                holder: holder ?? settings.lease?.holder, ttlSeconds: leaseTTL ?? settings.lease?.ttlSeconds)
        }
        if let adminAddress { settings.admin = IngestorConfiguration.Admin(address: adminAddress) }
        if logLevel != nil || logFormat != nil {
            settings.log = IngestorConfiguration.Log(level: logLevel ?? settings.log?.level, format: logFormat ?? settings.log?.format)
        }
        return settings
    }
}

// swift-format-ignore: AvoidRetroactiveConformances
// Logging's levels as flag values: neither module declares it, and this executable is the only user.
extension Logger.Level: @retroactive ExpressibleByArgument {}
