/// The xDS resource types this server serves, by type URL.
public enum ResourceType: String, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    case endpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    /// API listeners for proxyless gRPC clients (`xds:///<service>.<namespace>:<port>`).
    case listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    case route = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

    /// The type URL as it appears in requests and responses.
    public var typeURL: String { rawValue }

    /// The short name used in metrics, logs and debug output: `cds`, `eds`.
    public var shortName: String {
        switch self {
        case .cluster: "cds"
        case .endpoint: "eds"
        case .listener: "lds"
        case .route: "rds"
        }
    }

    /// State-of-the-world responses of this type carry the full set (CDS, LDS); the others carry only
    /// what changed (EDS, RDS), and an absent resource is not a removal.
    public var isFullState: Bool {
        switch self {
        case .cluster, .listener: true
        case .endpoint, .route: false
        }
    }

    /// Whether an empty subscription on the first request means "everything" (legacy wildcard).
    public var allowsWildcard: Bool { isFullState }

    /// The order pushes go out in one update: clusters before their load assignments (Envoy warming),
    /// then listeners and routes, so a route never names a cluster the client does not have yet.
    public var pushOrder: Int {
        switch self {
        case .cluster: 0
        case .endpoint: 1
        case .listener: 2
        case .route: 3
        }
    }

    public var description: String { shortName }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.pushOrder < rhs.pushOrder }

    // Compared and hashed by case. The standard library's defaults for a String-backed enum go through
    // the raw value, so every `[ResourceType: …]` lookup (several per request and per change on every
    // stream) hashed a 60-byte type URL.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.pushOrder == rhs.pushOrder }
    public func hash(into hasher: inout Hasher) { hasher.combine(pushOrder) }
}
