import Shared

/// The merged, multi-cluster view the xds-server serves from: every source's endpoint sets, and for each
/// Envoy cluster (namespace, service, port) the endpoints of every source that exports the service.
///
/// A value type fed by `StoreFollower` deliveries; each `apply` says which clusters changed, so the
/// server rebuilds (and pushes) only those.
public struct EndpointIndex: Sendable {
    /// One endpoint of a cluster, with where it comes from and the port to reach it on.
    public struct Member: Hashable, Sendable {
        public var source: SourceCluster
        public var endpoint: Endpoint
        public var targetPort: UInt16
    }

    private var sets: [ServiceKey: [SourceCluster: EndpointSet]] = [:]

    public init() {}

    /// Applies one source's updates. - Returns: the clusters whose membership or ports changed.
    public mutating func apply(_ updates: [EndpointChange], from source: SourceCluster) -> Set<ClusterKey> {
        var changed = Set<ClusterKey>()
        for update in updates {
            switch update {
            case .upsert(let set):
                let previous = sets[set.service]?[source]
                guard previous != set else { continue }
                changed.formUnion(clusters(of: previous))
                changed.formUnion(clusters(of: set))
                sets[set.service, default: [:]][source] = set
            case .remove(let key):
                guard let previous = sets[key]?.removeValue(forKey: source) else { continue }
                if sets[key]?.isEmpty == true { sets[key] = nil }
                changed.formUnion(clusters(of: previous))
            }
        }
        return changed
    }

    /// Every cluster with at least one source exporting its service, with its port. When sources
    /// disagree on a port's protocol, the first source by name decides (deterministic on every replica).
    public var clusters: [ClusterKey: ServicePort] {
        var result: [ClusterKey: ServicePort] = [:]
        for bySource in sets.values {
            for (_, set) in bySource.sorted(by: { $0.key > $1.key }) {
                for port in set.ports { result[ClusterKey(service: set.service, port: port)] = port }
            }
        }
        return result
    }

    /// The port of one cluster, or nil when no source exports it (the first source by name decides,
    /// as in `clusters`).
    public func port(of cluster: ClusterKey) -> ServicePort? {
        for (_, set) in (sets[cluster.service] ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let port = set.ports.first(where: { ClusterKey(service: set.service, port: $0) == cluster }) { return port }
        }
        return nil
    }

    /// The failover policy of a cluster's service: the first source by name that sets one (the same on
    /// every replica), or nil when none does.
    public func failover(of cluster: ClusterKey) -> FailoverPolicy? {
        for (_, set) in (sets[cluster.service] ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let policy = set.failover { return policy }
        }
        return nil
    }

    /// The members of one cluster, sorted by source then address.
    public func members(of cluster: ClusterKey) -> [Member] {
        var members: [Member] = []
        for (source, set) in (sets[cluster.service] ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard let index = set.ports.firstIndex(where: { ClusterKey(service: set.service, port: $0) == cluster }) else { continue }
            for endpoint in set.endpoints where endpoint.targetPorts[index] != 0 {
                members.append(Member(source: source, endpoint: endpoint, targetPort: endpoint.targetPorts[index]))
            }
        }
        return members
    }

    /// The sources exporting a service.
    public func sources(of service: ServiceKey) -> [SourceCluster] {
        (sets[service] ?? [:]).keys.sorted()
    }

    private func clusters(of set: EndpointSet?) -> [ClusterKey] {
        guard let set else { return [] }
        return set.ports.map { ClusterKey(service: set.service, port: $0) }
    }
}
