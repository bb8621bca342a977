import Foundation
import Shared
import Yams

/// The ingestor's configuration: one YAML file (docs/configuration.md), overridable by flags and
/// environment. Every field has a default except the source and where its endpoints come from.
public struct IngestorConfiguration: Codable, Sendable, Equatable {
    public struct Kubernetes: Codable, Sendable, Equatable {
        /// Path of a kubeconfig; nil with `inCluster` uses the pod's service account.
        public var kubeconfig: String?
        public var context: String?
        public var inCluster: Bool?
        /// Allow the kubeconfig to run exec credential plugins (they run commands on this host).
        public var allowExec: Bool?
        /// Allow the kubeconfig to reference local files (tokens, keys, CAs).
        public var allowFileReferences: Bool?
        /// EKS: make tokens natively for this cluster name (credentials from the environment or IRSA).
        public var eksCluster: String?
        public var eksRegion: String?
        /// STS endpoint for IRSA's AssumeRoleWithWebIdentity (default `https://sts.<region>.amazonaws.com`).
        public var eksSTSEndpoint: String?
        /// Only these namespaces (each watched on its own); empty = cluster-wide.
        public var namespaces: [String]?
        public var excludeNamespaces: [String]?
        public var labelSelector: String?
        /// Export only services annotated `legation.io/export: "true"`.
        public var requireExportAnnotation: Bool?
        public var pageSize: Int?
        public var watchTimeoutSeconds: Int?
        public init() {}
    }

    public struct File: Codable, Sendable, Equatable {
        public var path: String
        public var pollIntervalSeconds: Double?
        public init(path: String, pollIntervalSeconds: Double? = nil) {
            self.path = path
            self.pollIntervalSeconds = pollIntervalSeconds
        }
    }

    public typealias Redis = RedisSettings

    public struct Lease: Codable, Sendable, Equatable {
        public var holder: String?
        public var ttlSeconds: Double?
        public init(holder: String? = nil, ttlSeconds: Double? = nil) {
            self.holder = holder
            self.ttlSeconds = ttlSeconds
        }
    }

    public struct Publish: Codable, Sendable, Equatable {
        public var coalesceMilliseconds: Double?
        public var batchLimit: Int?
        public var reconcileSeconds: Double?
        /// How often the lease holder writes its heartbeat (it expires after three); readers flag the
        /// source stale when it expires.
        public var heartbeatSeconds: Double?
    }

    public struct Admin: Codable, Sendable, Equatable {
        /// `host:port` of /healthz, /readyz, /metrics.
        public var address: String?
        public init(address: String? = nil) { self.address = address }
    }

    public typealias Log = LogSettings

    /// The source cluster this ingestor publishes (a DNS label; part of every Redis key).
    public var source: String?
    public var kubernetes: Kubernetes?
    public var file: File?
    public var redis: Redis?
    public var lease: Lease?
    public var publish: Publish?
    public var admin: Admin?
    public var log: Log?

    public init() {}

    /// Parses YAML. - Throws: `ModelError.invalidField` naming the place of the problem.
    public static func parse(yaml: String) throws(ModelError) -> IngestorConfiguration {
        do {
            return try YAMLDecoder().decode(IngestorConfiguration.self, from: yaml)
        } catch {
            throw ModelError(.invalidField, "configuration: \(error)")
        }
    }

    /// Every problem, in words an operator can act on; empty when the configuration is usable.
    public func problems() -> [String] {
        var problems: [String] = []
        if let source {
            if (try? SourceCluster(source)) == nil { problems.append("source \(source.prefix(80)) is not a DNS label") }
        } else if file == nil {
            problems.append("source is not set (the source cluster's name)")
        }
        switch (kubernetes, file) {
        case (nil, nil): problems.append("set kubernetes (a cluster to watch) or file (a YAML file of endpoints)")
        case (.some, .some): problems.append("set kubernetes or file, not both: one ingestor publishes one source")
        case (let kubernetes?, nil):
            if kubernetes.kubeconfig == nil, kubernetes.inCluster != true {
                problems.append("kubernetes: set kubeconfig, or inCluster: true")
            }
            if let selector = kubernetes.labelSelector, (try? LabelSelector(parsing: selector)) == nil {
                problems.append("kubernetes.labelSelector \(selector.prefix(80)) does not parse")
            }
            for namespace in (kubernetes.namespaces ?? []) + (kubernetes.excludeNamespaces ?? [])
            where (try? ServiceKey(namespace: namespace, name: "x")) == nil {
                problems.append("kubernetes: namespace \(namespace.prefix(80)) is not a DNS label")
            }
            if (kubernetes.eksCluster == nil) != (kubernetes.eksRegion == nil) {
                problems.append("kubernetes: eksCluster and eksRegion go together")
            }
            if let size = kubernetes.pageSize, !(1...10_000).contains(size) { problems.append("kubernetes.pageSize must be 1...10000") }
            if let timeout = kubernetes.watchTimeoutSeconds, !(10...3600).contains(timeout) {
                problems.append("kubernetes.watchTimeoutSeconds must be 10...3600")
            }
        case (nil, let file?):
            if let interval = file.pollIntervalSeconds, !(0.05...3600).contains(interval) {
                problems.append("file.pollIntervalSeconds must be 0.05...3600")
            }
        }
        problems += (redis ?? RedisSettings()).problems()
        if let ttl = lease?.ttlSeconds, !(1...600).contains(ttl) { problems.append("lease.ttlSeconds must be 1...600") }
        if let holder = lease?.holder, holder.isEmpty || holder.contains(" ") {
            problems.append("lease.holder must be a token without spaces")
        }
        if let batch = publish?.batchLimit, !(1...10_000).contains(batch) { problems.append("publish.batchLimit must be 1...10000") }
        if let heartbeat = publish?.heartbeatSeconds, !(0.2...60).contains(heartbeat) {
            problems.append("publish.heartbeatSeconds must be 0.2...60")
        }
        if let window = publish?.coalesceMilliseconds, !(0...10_000).contains(window) {
            problems.append("publish.coalesceMilliseconds must be 0...10000")
        }
        if let address = admin?.address, splitHostAndPort(address) == nil {
            problems.append("admin.address \(address.prefix(80)) is not host:port")
        }
        problems += (log ?? LogSettings()).problems()
        return problems
    }

}
