import Foundation
import Shared
import Yams

/// The xds-server's configuration: one YAML file (docs/configuration.md), overridable by flags and
/// environment. Every field has a default; only Redis must be given (or the embedded demo store used).
public struct XDSServerConfiguration: Codable, Sendable, Equatable {
    public struct GRPC: Codable, Sendable, Equatable {
        /// `host:port` of the xDS listener (default `0.0.0.0:18000`).
        public var address: String?
        public var maxStreams: Int?
        public var maxRequestBytes: Int?
        public var maxStreamsPerConnection: Int?
        public var keepaliveSeconds: Double?
        public var keepaliveTimeoutSeconds: Double?
        /// Connections are closed (GOAWAY) after this age ± jitter; 0 disables.
        public var maxConnectionAgeSeconds: Double?
        public var connectionAgeJitter: Double?
        public var gracePeriodSeconds: Double?
        /// `nio` (default): the xDS listener on SwiftNIO HTTP/2; `grpc-swift`: grpc-swift-2's server.
        public var transport: String?
        public var tls: TLS?
        public init() {}

        /// TLS (and, with `clientCAFile`, mutual TLS) for the xDS listener.
        public struct TLS: Codable, Sendable, Equatable {
            public var certificateChainFile: String?
            public var privateKeyFile: String?
            public var clientCAFile: String?
            /// How often the certificate and key are re-read (default 60).
            public var reloadSeconds: Double?
            /// With `clientCAFile`: a pattern the client certificate's URI or DNS SAN must match, where
            /// `{node}` is the client's node id and `*` one segment (`spiffe://mesh/ns/*/sa/{node}`).
            public var nodeIdentity: String?
            public init() {}
        }
    }

    public struct Debounce: Codable, Sendable, Equatable {
        public var quietMilliseconds: Double?
        public var maximumMilliseconds: Double?
        public init() {}
    }

    public struct Resources: Codable, Sendable, Equatable {
        public var connectTimeoutMilliseconds: Int?
        /// ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV.
        public var loadBalancing: String?
        public var keepUnservingEndpoints: Bool?
        /// Priorities by locality for clients that say where they are (default true).
        public var localityPriorities: Bool?
        /// The failover order of services without a `legation.io/failover` annotation, in its syntax
        /// (default `zone,region`).
        public var failoverOrder: String?
        public init() {}
    }

    public struct Admin: Codable, Sendable, Equatable {
        public var address: String?
        public init(address: String? = nil) { self.address = address }
    }

    /// The debug views (`/debug/*`): their own listener, localhost unless set otherwise.
    public struct Debug: Codable, Sendable, Equatable {
        /// `host:port` (default `127.0.0.1:9092`).
        public var address: String?
        /// A file holding a bearer token; when set, `/debug/*` answers only requests that carry it.
        public var tokenFile: String?
        public init(address: String? = nil, tokenFile: String? = nil) {
            self.address = address
            self.tokenFile = tokenFile
        }
    }

    public typealias Log = LogSettings

    /// Sources whose sync canary readiness waits for (others are served as they appear).
    public var sources: [String]?
    public var readinessTimeoutSeconds: Double?
    /// Identifies this replica in responses (`control_plane.identifier`) and logs.
    public var identifier: String?
    public var grpc: GRPC?
    public var debounce: Debounce?
    public var resources: Resources?
    public var redis: RedisSettings?
    public var admin: Admin?
    public var debug: Debug?
    public var log: Log?

    public init() {}

    /// Parses YAML. - Throws: `ModelError.invalidField` naming the place of the problem.
    public static func parse(yaml: String) throws(ModelError) -> XDSServerConfiguration {
        do {
            return try YAMLDecoder().decode(XDSServerConfiguration.self, from: yaml)
        } catch {
            throw ModelError(.invalidField, "configuration: \(error)")
        }
    }

    /// Every problem, in words an operator can act on; empty when the configuration is usable.
    public func problems() -> [String] {
        var problems: [String] = []
        for source in sources ?? [] where (try? SourceCluster(source)) == nil {
            problems.append("sources: \(source.prefix(80)) is not a DNS label")
        }
        if let timeout = readinessTimeoutSeconds, !(0...3600).contains(timeout) {
            problems.append("readinessTimeoutSeconds must be 0...3600")
        }
        if let address = grpc?.address, splitHostAndPort(address) == nil {
            problems.append("grpc.address \(address.prefix(80)) is not host:port")
        }
        if let address = admin?.address, splitHostAndPort(address) == nil {
            problems.append("admin.address \(address.prefix(80)) is not host:port")
        }
        if let address = debug?.address, splitHostAndPort(address) == nil {
            problems.append("debug.address \(address.prefix(80)) is not host:port")
        }
        if let file = debug?.tokenFile, !FileManager.default.isReadableFile(atPath: file) {
            problems.append("debug.tokenFile \(file.prefix(200)) is not a readable file")
        }
        if let value = grpc?.maxStreams, !(1...1_000_000).contains(value) { problems.append("grpc.maxStreams must be 1...1000000") }
        if let value = grpc?.maxRequestBytes, !(1024...(64 << 20)).contains(value) {
            problems.append("grpc.maxRequestBytes must be 1 KiB...64 MiB")
        }
        if let value = grpc?.maxStreamsPerConnection, !(1...10_000).contains(value) {
            problems.append("grpc.maxStreamsPerConnection must be 1...10000")
        }
        if let value = grpc?.keepaliveSeconds, !(1...86_400).contains(value) { problems.append("grpc.keepaliveSeconds must be 1...86400") }
        if let value = grpc?.keepaliveTimeoutSeconds, !(1...600).contains(value) {
            problems.append("grpc.keepaliveTimeoutSeconds must be 1...600")
        }
        if let value = grpc?.maxConnectionAgeSeconds, !(value == 0 || (10...604_800).contains(value)) {
            problems.append("grpc.maxConnectionAgeSeconds must be 0 (never) or 10...604800")
        }
        if let value = grpc?.connectionAgeJitter, !(0...0.5).contains(value) { problems.append("grpc.connectionAgeJitter must be 0...0.5") }
        if let value = grpc?.gracePeriodSeconds, !(0...600).contains(value) { problems.append("grpc.gracePeriodSeconds must be 0...600") }
        if let value = grpc?.transport, ServingOptions.Transport(rawValue: value) == nil {
            problems.append(
                "grpc.transport \(value.prefix(40)) is not one of \(ServingOptions.Transport.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        if let tls = grpc?.tls {
            for (field, path) in [("certificateChainFile", tls.certificateChainFile), ("privateKeyFile", tls.privateKeyFile)] {
                guard let path else {
                    problems.append("grpc.tls.\(field) is required when grpc.tls is set")
                    continue
                }
                if !FileManager.default.isReadableFile(atPath: path) {
                    problems.append("grpc.tls.\(field) \(path.prefix(200)) is not a readable file")
                }
            }
            if let path = tls.clientCAFile, !FileManager.default.isReadableFile(atPath: path) {
                problems.append("grpc.tls.clientCAFile \(path.prefix(200)) is not a readable file")
            }
            if let value = tls.reloadSeconds, !(1...86_400).contains(value) { problems.append("grpc.tls.reloadSeconds must be 1...86400") }
            if let pattern = tls.nodeIdentity {
                if tls.clientCAFile == nil { problems.append("grpc.tls.nodeIdentity needs grpc.tls.clientCAFile (client certificates)") }
                do { _ = try NodeIdentityRule(pattern) } catch { problems.append("grpc.tls.nodeIdentity \(pattern.prefix(200)): \(error)") }
            }
        }
        let quiet = debounce?.quietMilliseconds ?? 10
        let maximum = debounce?.maximumMilliseconds ?? 100
        if !(0...60_000).contains(quiet) { problems.append("debounce.quietMilliseconds must be 0...60000") }
        if !(0...60_000).contains(maximum) { problems.append("debounce.maximumMilliseconds must be 0...60000") }
        if maximum < quiet { problems.append("debounce.maximumMilliseconds (\(maximum)) must not be below quietMilliseconds (\(quiet))") }
        if let policy = resources?.loadBalancing, ResourceOptions.LoadBalancing(rawValue: policy) == nil {
            problems.append(
                "resources.loadBalancing must be one of \(ResourceOptions.LoadBalancing.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let order = resources?.failoverOrder {
            do { _ = try FailoverPolicy(parsing: order) } catch { problems.append("resources.failoverOrder: \(error.message)") }
        }
        if let timeout = resources?.connectTimeoutMilliseconds, !(1...600_000).contains(timeout) {
            problems.append("resources.connectTimeoutMilliseconds must be 1...600000")
        }
        problems += (redis ?? RedisSettings()).problems()
        problems += (log ?? LogSettings()).problems()
        return problems
    }

    /// The runtime options this configuration describes (call only when `problems()` is empty).
    public func runtimeOptions() -> XDSServerRuntime.Options {
        var options = XDSServerRuntime.Options()
        options.pipeline.requiredSources = Set((sources ?? []).compactMap { try? SourceCluster($0) })
        if let timeout = readinessTimeoutSeconds { options.pipeline.readinessTimeout = .milliseconds(Int64(timeout * 1000)) }
        options.pipeline.debounce = DebounceOptions(
            quiet: .milliseconds(Int64(debounce?.quietMilliseconds ?? 10)),
            maximum: .milliseconds(Int64(debounce?.maximumMilliseconds ?? 100)))
        if let timeout = resources?.connectTimeoutMilliseconds { options.pipeline.resources.connectTimeoutMilliseconds = timeout }
        if let policy = resources?.loadBalancing.flatMap(ResourceOptions.LoadBalancing.init(rawValue:)) {
            options.pipeline.resources.loadBalancing = policy
        }
        if let keep = resources?.keepUnservingEndpoints { options.pipeline.resources.keepUnservingEndpoints = keep }
        if let enabled = resources?.localityPriorities { options.pipeline.resources.localityPriorities = enabled }
        if let order = resources?.failoverOrder.flatMap({ try? FailoverPolicy(parsing: $0) }) {
            options.pipeline.resources.failoverOrder = order
        }
        if let address = grpc?.address, let (host, port) = splitHostAndPort(address) {
            options.serving.host = host
            options.serving.port = port
        }
        if let value = grpc?.maxStreams { options.service.maximumStreams = value }
        if let value = grpc?.maxRequestBytes { options.serving.maximumRequestBytes = value }
        if let value = grpc?.maxStreamsPerConnection { options.serving.maximumStreamsPerConnection = value }
        if let value = grpc?.keepaliveSeconds { options.serving.keepaliveTime = .milliseconds(Int64(value * 1000)) }
        if let value = grpc?.keepaliveTimeoutSeconds { options.serving.keepaliveTimeout = .milliseconds(Int64(value * 1000)) }
        if let value = grpc?.maxConnectionAgeSeconds {
            options.serving.maximumConnectionAge = value == 0 ? nil : .milliseconds(Int64(value * 1000))
        }
        if let value = grpc?.connectionAgeJitter { options.serving.connectionAgeJitter = value }
        if let value = grpc?.gracePeriodSeconds { options.serving.closeGracePeriod = .milliseconds(Int64(value * 1000)) }
        if let value = grpc?.transport, let transport = ServingOptions.Transport(rawValue: value) { options.serving.transport = transport }
        if let tls = grpc?.tls, let chain = tls.certificateChainFile, let key = tls.privateKeyFile {
            var settings = ServingOptions.TLS(certificateChainFile: chain, privateKeyFile: key, clientCAFile: tls.clientCAFile)
            if let seconds = tls.reloadSeconds { settings.reloadInterval = .milliseconds(Int64(seconds * 1000)) }
            options.serving.tls = settings
            options.service.nodeIdentity = tls.nodeIdentity.flatMap { try? NodeIdentityRule($0) }
        }
        if let identifier { options.service.controlPlaneIdentifier = identifier }
        return options
    }

}
