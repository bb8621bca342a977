import AdminHTTP
import Foundation
import Ingestor
import Logging
import Prometheus
import RedisStore
import ServiceLifecycle
import Shared

/// Builds the ingestor's graph from a validated configuration and runs it as one ServiceGroup:
/// store → publisher → source (Kubernetes or file) → admin HTTP. Shutdown (SIGTERM/SIGINT) stops the
/// source, flushes the publisher, releases the lease, then closes Redis.
struct IngestorRunner {
    let settings: IngestorConfiguration
    let registry: PrometheusCollectorRegistry
    let logger: Logger

    func run() async throws {
        let redisSettings = settings.redis ?? RedisSettings()
        let redisConfiguration = try redisSettings.configuration(clientName: "legation-ingestor")
        let store = RedisEndpointStore(redisConfiguration, options: redisSettings.storeOptions, logger: logger)

        let source: SourceCluster
        var fileText: String?
        if let file = settings.file {
            guard let text = try? String(contentsOfFile: file.path, encoding: .utf8) else {
                throw IngestorError(.configuration, "cannot read \(file.path)")
            }
            let parsed = try FileSourceParser.parse(text)
            if let name = settings.source, name != parsed.source.name {
                throw ModelError(.invalidField, "\(file.path) describes cluster \(parsed.source), but source is \(name)")
            }
            source = parsed.source
            fileText = text
        } else {
            source = try SourceCluster(settings.source!)
        }

        var publisherOptions = EndpointPublisher.Options()
        if let ttl = settings.lease?.ttlSeconds { publisherOptions.leaseTTL = .milliseconds(Int64(ttl * 1000)) }
        publisherOptions.heartbeatInterval = publisherOptions.leaseTTL / 3
        if let window = settings.publish?.coalesceMilliseconds { publisherOptions.coalescingWindow = .milliseconds(Int64(window)) }
        if let batch = settings.publish?.batchLimit { publisherOptions.batchLimit = batch }
        if let heartbeat = settings.publish?.heartbeatSeconds {
            publisherOptions.heartbeatInterval = .milliseconds(Int64(heartbeat * 1000))
        }
        if let reconcile = settings.publish?.reconcileSeconds {
            publisherOptions.reconcileInterval = .milliseconds(Int64(reconcile * 1000))
        }
        let holder = settings.lease?.holder ?? "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        let publisher = EndpointPublisher(store: store, source: source, holder: holder, options: publisherOptions, logger: logger)

        var services: [any Service] = [CancellableService { await publisher.run() }]
        var kubernetesClient: KubernetesClient?
        if let file = settings.file, fileText != nil {
            let watcher = FileSourceWatcher(
                path: file.path, publisher: publisher, pollInterval: .milliseconds(Int64((file.pollIntervalSeconds ?? 1) * 1000)),
                logger: logger)
            services.append(CancellableService { await watcher.run() })
        } else if let kubernetes = settings.kubernetes {
            let client = try KubernetesClient(try connection(kubernetes))
            kubernetesClient = client
            let selection = ServiceSelection(
                includeNamespaces: Set(kubernetes.namespaces ?? []),
                excludeNamespaces: Set(kubernetes.excludeNamespaces ?? ["kube-system"]),
                labelSelector: try kubernetes.labelSelector.map { try LabelSelector(parsing: $0) } ?? .everything,
                requiredAnnotation: kubernetes.requireExportAnnotation == true ? ServiceSelection.exportAnnotation : nil)
            var options = KubernetesSource.Options()
            options.namespaces = kubernetes.namespaces ?? []
            if let size = kubernetes.pageSize { options.pageSize = size }
            if let timeout = kubernetes.watchTimeoutSeconds { options.watchTimeoutSeconds = timeout }
            let watch = KubernetesSource(client: client, publisher: publisher, selection: selection, options: options, logger: logger)
            services.append(CancellableService { await watch.run() })
        }

        let (host, port) = splitHostAndPort(settings.admin?.address ?? "0.0.0.0:9090")!
        let admin = try await AdminServer.start(
            host: host, port: port, registry: registry,
            ready: {
                let status = await publisher.status
                if status.isSynced { return nil }
                return status.isLeader ? "initial list not yet published" : "standby: another instance holds the lease"
            },
            routes: [
                "/status": {
                    let status = await publisher.status
                    return AdminServer.Response(
                        contentType: "application/json",
                        body:
                            #"{"source":"\#(source)","holder":"\#(holder)","leader":\#(status.isLeader),"synced":\#(status.isSynced),"pending":\#(status.pendingWrites),"sourceReachable":\#(status.isSourceReachable)}"#
                            + "\n")
                }
            ])
        logger.info(
            "ingestor started",
            metadata: [
                "source": "\(source)", "holder": "\(holder)", "redis": "\(redisConfiguration.redactedURL)", "admin": "\(host):\(admin.port)"
            ])
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        await admin.close()
        await kubernetesClient?.shutdown()
        await store.close()
    }

    private func connection(_ kubernetes: IngestorConfiguration.Kubernetes) throws -> KubernetesConnection {
        var connection: KubernetesConnection
        if let path = kubernetes.kubeconfig {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw IngestorError(.configuration, "cannot read kubeconfig \(path)")
            }
            connection = try Kubeconfig(yaml: text).connection(
                context: kubernetes.context,
                policy: .init(allowExec: kubernetes.allowExec ?? false, allowFileReferences: kubernetes.allowFileReferences ?? false))
        } else {
            connection = try Kubeconfig.inCluster()
        }
        if let cluster = kubernetes.eksCluster, let region = kubernetes.eksRegion {
            guard let source = EKSTokenProvider.credentialSource() else {
                throw IngestorError(
                    .configuration,
                    "eksCluster is set but the environment has no AWS credentials (AWS_ACCESS_KEY_ID or AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)"
                )
            }
            connection.credentials = .provider(
                EKSTokenProvider(cluster: cluster, region: region, source: source, stsEndpoint: kubernetes.eksSTSEndpoint))
        }
        return connection
    }
}
