import Shared
import Synchronization

/// The localities of one encoded `ClusterLoadAssignment` and the failover policy that ranks them, so
/// that the assignment with priorities for a client's place is assembled from the shared bytes.
///
/// Each variant is made once, the first time a client needs it, and shared by every client whose place
/// gives the same priorities: the work is per distinct priority assignment (bounded by the mesh's
/// zones, regions and source clusters, never by what clients send), not per client. A client whose
/// place matches no locality, or gives every locality the same rank, gets the base assignment itself
/// (everything at priority 0, the bytes served before priorities existed). A policy that prefers given
/// source clusters (`cluster=<name>`) ranks localities for every client, even one that says nothing.
public final class LocalityPriorities: Sendable {
    /// One `LocalityLbEndpoints` of the base assignment.
    public struct Locality: Sendable, Hashable {
        public var region: String
        public var zone: String
        /// The source cluster (the locality's sub-zone).
        public var source: String
        /// Where its fields (locality, endpoints, weight: everything but the priority) lie in the base
        /// assignment's bytes.
        var fields: Range<Int>
    }

    public let policy: FailoverPolicy
    public let localities: [Locality]
    /// Where the fields before the localities (the cluster name) end in the base bytes.
    let headEnd: Int
    /// The policy names source clusters (`cluster=<name>`): those rank localities even for a client
    /// that says nothing of where it is.
    let prefersSources: Bool
    private let variants = Mutex<[VariantKey: EncodedResource]>([:])

    /// A priority assignment as a dictionary key: packed four bits per locality when there are at most
    /// 16 (ranks are at most `FailoverPolicy.maximumCriteria`), so a lookup allocates nothing.
    private enum VariantKey: Hashable {
        case packed(UInt64)
        case list([UInt8])
    }

    /// - Parameters:
    ///   - localities: in the order of the base assignment's bytes.
    init(policy: FailoverPolicy, localities: [Locality], headEnd: Int) {
        self.policy = policy
        self.localities = localities
        self.headEnd = headEnd
        self.prefersSources = policy.order.contains { if case .source = $0 { true } else { false } }
    }

    /// Each locality's priority for a client at `client`: the place in the policy's order of the first
    /// criterion the locality shares with it (the order's length when none), numbered densely from 0.
    public func priorities(for client: ClientLocality) -> [UInt8] {
        var ranks = [UInt8](repeating: 0, count: localities.count)
        var used: UInt64 = 0  // bit r: some locality has rank r (ranks ≤ FailoverPolicy.maximumCriteria)
        for (index, locality) in localities.enumerated() {
            let rank = rank(locality, for: client)
            ranks[index] = UInt8(rank)
            used |= 1 << UInt64(rank)
        }
        // Dense: a rank becomes the number of used ranks below it.
        for index in ranks.indices {
            let below = used & ((1 << UInt64(ranks[index])) - 1)
            ranks[index] = UInt8(below.nonzeroBitCount)
        }
        return ranks
    }

    private func rank(_ locality: Locality, for client: ClientLocality) -> Int {
        for (place, criterion) in policy.order.enumerated() {
            switch criterion {
            case .zone: if !client.zone.isEmpty, locality.zone == client.zone { return place }
            case .region: if !client.region.isEmpty, locality.region == client.region { return place }
            case .cluster: if !client.cluster.isEmpty, locality.source == client.cluster { return place }
            case .source(let source): if locality.source == source.name { return place }
            }
        }
        return policy.order.count
    }

    /// The assignment `base` with priorities for `client`: `base` itself when every locality gets
    /// priority 0, else the variant for those priorities, made on first use and shared.
    func resource(for client: ClientLocality, base: EncodedResource) -> EncodedResource {
        let key: VariantKey
        if localities.count <= 16 {
            let packed = packedPriorities(for: client)
            guard packed != 0 else { return base }
            key = .packed(packed)
        } else {
            let ranks = priorities(for: client)
            guard ranks.contains(where: { $0 != 0 }) else { return base }
            key = .list(ranks)
        }
        return variants.withLock { variants in
            if let made = variants[key] { return made }
            let made = EncodedResource(
                type: base.type, name: base.name, resource: bytes(base: base.resource, priorities: priorities(for: client)))
            variants[key] = made
            return made
        }
    }

    /// `priorities(for:)` packed four bits per locality (at most 16 localities), without allocating.
    private func packedPriorities(for client: ClientLocality) -> UInt64 {
        var ranks: UInt64 = 0
        var used: UInt64 = 0
        for (index, locality) in localities.enumerated() {
            let rank = UInt64(rank(locality, for: client))
            ranks |= rank << UInt64(4 * index)
            used |= 1 << rank
        }
        var dense: UInt64 = 0
        for index in localities.indices {
            let rank = ranks >> UInt64(4 * index) & 0xf
            dense |= UInt64((used & ((1 << rank) - 1)).nonzeroBitCount) << UInt64(4 * index)
        }
        return dense
    }

    /// How many variants have been made (for `/debug/resources` and tests).
    public var variantCount: Int { variants.withLock { $0.count } }

    /// The base bytes with `priorities` set: each locality's fields, then its priority (field 5), which
    /// is where a deterministic encoder puts it (after the weight, field 3).
    func bytes(base: [UInt8], priorities: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(base.count + 4 * localities.count)
        out += base[0..<headEnd]
        for (locality, priority) in zip(localities, priorities) {
            var tail: [UInt8] = []
            if priority != 0 { WireFormat.appendVarintField(5, UInt64(priority), to: &tail) }
            WireFormat.appendField(2, length: locality.fields.count + tail.count, to: &out)  // ClusterLoadAssignment.endpoints
            out += base[locality.fields]
            out += tail
        }
        return out
    }
}
