/// How one service's endpoints are split into priorities for each client (design §4): an endpoint's
/// priority is the place, in `order`, of the first criterion its locality shares with the client's;
/// endpoints that share none come after all of them. Priorities are then numbered 0, 1, ... without
/// gaps, so the closest endpoints that exist are priority 0. Envoy (and gRPC) sends every request to
/// priority 0 while enough of it is healthy, and spills to the next priority only as it is not
/// (DRAINING and UNHEALTHY endpoints count as not healthy).
///
/// An empty `order` (`off`) puts every endpoint at priority 0: traffic spreads over every locality by
/// weight, as before priorities existed.
///
/// WARNING - STABLE API: `description` is the text of the `legation.io/failover` annotation and of
/// the `failover` field of an `EndpointSetRecord` (docs/redis-schema.md).
public struct FailoverPolicy: Hashable, Sendable, CustomStringConvertible {
    /// What an endpoint may share with a client.
    public enum Criterion: Hashable, Sendable, CustomStringConvertible {
        /// The endpoint is in the client's zone (`node.locality.zone`).
        case zone
        /// The endpoint is in the client's region (`node.locality.region`, else derived from its zone).
        case region
        /// The endpoint comes from the client's own source cluster (`node.locality.sub_zone`).
        case cluster
        /// The endpoint comes from this source cluster, whoever the client is: a fixed preference.
        case source(SourceCluster)

        public var description: String {
            switch self {
            case .zone: "zone"
            case .region: "region"
            case .cluster: "cluster"
            case .source(let source): "cluster=\(source.name)"
            }
        }
    }

    /// The annotation on a Service that sets its policy.
    public static let annotation = "legation.io/failover"
    /// The most criteria one policy may list.
    public static let maximumCriteria = 8
    /// Everything at one priority.
    public static let off = FailoverPolicy(uncheckedOrder: [])
    /// The order used when a service sets none: same zone, then same region, then the rest.
    public static let proximity = FailoverPolicy(uncheckedOrder: [.zone, .region])

    public let order: [Criterion]

    /// Whether the policy makes priorities at all.
    public var isOff: Bool { order.isEmpty }

    private init(uncheckedOrder order: [Criterion]) {
        self.order = order
    }

    /// - Throws: `ModelError.invalidField` when a criterion repeats or there are too many.
    public init(order: [Criterion]) throws(ModelError) {
        guard order.count <= Self.maximumCriteria else {
            throw ModelError(.invalidField, "a failover order lists at most \(Self.maximumCriteria) criteria, not \(order.count)")
        }
        var seen = Set<Criterion>()
        for criterion in order where !seen.insert(criterion).inserted {
            throw ModelError(.invalidField, "failover criterion \(criterion) is listed twice")
        }
        self.order = order
    }

    /// Parses the annotation's text: `off`, or criteria separated by commas, in order of preference:
    /// `zone`, `region`, `cluster` (the client's own source cluster) and `cluster=<name>` (a given
    /// source cluster). Spaces around items are ignored; keywords are not case-sensitive.
    ///
    /// - Throws: `ModelError.invalidField` saying what is wrong (empty, unknown item, a source name that
    ///   is not a DNS label, a repeated criterion, too many).
    public init(parsing text: String) throws(ModelError) {
        let trimmed = text.trimmingASCIISpaces()
        guard trimmed.utf8.count <= 1024 else {
            throw ModelError(.invalidField, "failover policy of \(text.utf8.count) bytes; at most 1024")
        }
        if trimmed.lowercased() == "off" {
            self = .off
            return
        }
        guard !trimmed.isEmpty else {
            throw ModelError(.invalidField, "failover policy is empty; give criteria (e.g. \"zone,region\") or \"off\"")
        }
        var order: [Criterion] = []
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let word = String(item).trimmingASCIISpaces()
            switch word.lowercased() {
            case "zone": order.append(.zone)
            case "region": order.append(.region)
            case "cluster": order.append(.cluster)
            default:
                let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, String(parts[0]).trimmingASCIISpaces().lowercased() == "cluster" else {
                    throw ModelError(
                        .invalidField,
                        "failover criterion \(String(reflecting: String(word.prefix(64)))) is not one of zone, region, cluster, cluster=<name>, or off alone"
                    )
                }
                let name = String(parts[1]).trimmingASCIISpaces()
                do {
                    order.append(.source(try SourceCluster(name)))
                } catch {
                    throw ModelError(.invalidField, "failover criterion cluster=\(name.prefix(64)): \(error.message)")
                }
            }
        }
        try self.init(order: order)
    }

    /// The canonical text: `off`, or the criteria joined by commas.
    public var description: String {
        order.isEmpty ? "off" : order.map(\.description).joined(separator: ",")
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (no Foundation in the model).
    func trimmingASCIISpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
            let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[first...last])
    }
}
