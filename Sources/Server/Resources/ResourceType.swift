/// The xDS resource types this server serves, by type URL.
public enum ResourceType: String, CaseIterable, Comparable, Sendable, CustomStringConvertible {
    case cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    case endpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"

    /// The type URL as it appears in requests and responses.
    public var typeURL: String { rawValue }

    /// The short name used in metrics, logs and debug output: `cds`, `eds`.
    public var shortName: String {
        switch self {
        case .cluster: "cds"
        case .endpoint: "eds"
        }
    }

    /// State-of-the-world responses of this type carry the full set (CDS, LDS); the others carry only
    /// what changed (EDS, RDS), and an absent resource is not a removal.
    public var isFullState: Bool {
        switch self {
        case .cluster: true
        case .endpoint: false
        }
    }

    /// Whether an empty subscription on the first request means "everything" (legacy wildcard).
    public var allowsWildcard: Bool { isFullState }

    /// The order pushes go out in one update: clusters before their load assignments (Envoy warming).
    public var pushOrder: Int {
        switch self {
        case .cluster: 0
        case .endpoint: 1
        }
    }

    public var description: String { shortName }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.pushOrder < rhs.pushOrder }
}
