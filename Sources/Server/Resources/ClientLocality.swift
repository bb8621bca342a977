import Shared

/// Where a client is, as failover policies compare it with endpoints' localities: from the `locality`
/// of the node in its first request. Every client of one place gets the same priorities, so what is
/// assembled for one of them is shared by all (`LocalityPriorities`).
///
/// - `zone`: `node.locality.zone`;
/// - `region`: `node.locality.region`, else derived from the zone by cloud naming (`us-east-1a` →
///   `us-east-1`), as endpoints' regions are;
/// - `cluster`: `node.locality.sub_zone`, the client's own source cluster, the same name Legation gives
///   endpoints' sub-zones.
public struct ClientLocality: Hashable, Sendable, CustomStringConvertible {
    public var region: String
    public var zone: String
    public var cluster: String

    /// A client that said nothing of where it is: it gets every endpoint at priority 0.
    public static let unknown = ClientLocality(region: "", zone: "", cluster: "")

    public init(region: String, zone: String, cluster: String) {
        self.region = region.isEmpty ? ResourceBuilder.region(ofZone: zone) : region
        self.zone = zone
        self.cluster = cluster
    }

    init(_ node: ClientNode) {
        self.init(region: node.region, zone: node.zone, cluster: node.subZone)
    }

    public var isUnknown: Bool { region.isEmpty && zone.isEmpty && cluster.isEmpty }

    public var description: String {
        isUnknown
            ? "unknown"
            : "region \(region.isEmpty ? "-" : region), zone \(zone.isEmpty ? "-" : zone), cluster \(cluster.isEmpty ? "-" : cluster)"
    }
}
