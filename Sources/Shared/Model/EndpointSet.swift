import Crypto
import SwiftProtobuf

/// The full endpoint set of one service in one source cluster: the unit every publish carries
/// (Istio's `EDSUpdate` contract: never a delta, always the whole set of one (cluster, service)).
///
/// Validated: it can only be built by a source's aggregator or by the record decoder (`package` init), so
/// every set in the system has unique canonical addresses, target ports aligned with `ports`, and
/// sizes within the limits below. Endpoints are kept sorted by address, so equal content means equal
/// values and an equal `contentHash` on every process.
public struct EndpointSet: Hashable, Sendable {
    /// The most endpoints one set may hold. Kubernetes caps a slice at 1,000 endpoints; a service rarely
    /// has more than a few thousand. Larger input is refused with `ModelError.tooLarge`.
    public static let maximumEndpoints = 100_000
    /// The most ports one service may declare.
    public static let maximumPorts = 128

    public let source: SourceCluster
    public let service: ServiceKey
    public let ports: [ServicePort]
    /// Sorted by address, addresses unique.
    public var endpoints: [Endpoint] { endpointList.endpoints }
    /// `endpoints.count`, without making the list of a set that defers it.
    public var endpointCount: Int { endpointList.count }
    private let endpointList: EndpointList
    /// First 64 bits of SHA-256 over the canonical encoding of `ports` and `endpoints`. Equal on every
    /// process for equal content; used to skip unchanged publishes. (STABLE API: stored in Redis.)
    public let contentHash: UInt64
    /// `ports` and `endpoints` encoded as they are in the record (fields 6 and 7), what `contentHash`
    /// hashes: kept by sets a writer made, so each publish copies them once. Empty in sets decoded
    /// from a record (readers never write them back).
    let content: [UInt8]
    /// How the service's endpoints become priorities for each client; nil: the xds-server's default.
    /// Set by the `legation.io/failover` annotation (or the file source's `failover`).
    public let failover: FailoverPolicy?
    /// What the store compares to skip an unchanged write (STABLE API: stored in the source's `hashes`):
    /// `contentHash` when there is no policy, else the first 64 bits of SHA-256 over `contentHash`
    /// (big-endian) and the policy's text. The record's own `content_hash` stays the hash of ports and
    /// endpoints, so readers that predate policies accept records that carry one.
    public var versionHash: UInt64 {
        guard let failover else { return contentHash }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + failover.description.utf8.count)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: contentHash >> UInt64(shift))) }
        bytes += failover.description.utf8
        return Self.hash(contentBytes: bytes)
    }

    /// - Throws: `ModelError` if ports or endpoints break the invariants above.
    package init(source: SourceCluster, service: ServiceKey, ports: [ServicePort], endpoints: [Endpoint], failover: FailoverPolicy? = nil)
        throws(ModelError)
    {
        try self.init(source: source, service: service, ports: ports, endpoints: endpoints, knownHash: nil, failover: failover)
    }

    /// Endpoints already sorted by address (checked, not sorted again).
    package init(
        source: SourceCluster, service: ServiceKey, ports: [ServicePort], sortedEndpoints: [Endpoint], failover: FailoverPolicy? = nil
    )
        throws(ModelError)
    {
        try self.init(
            source: source, service: service, ports: ports, endpoints: sortedEndpoints, knownHash: nil, failover: failover, sorted: true)
    }

    /// A set the aggregator assembled: `endpoints` from its merge (sorted by address, each address once,
    /// each mapping `ports.count` target ports) and `content` as `contentBytes(ports:endpoints:)` would
    /// write it, spliced from each slice's encoding (`assembleContent`). Only the counts are checked
    /// here: the merge establishes the order by construction, and debug builds (the tests) check every
    /// invariant, content included, as the other initializers do.
    package init(
        source: SourceCluster, service: ServiceKey, ports: [ServicePort], mergedEndpoints endpoints: EndpointList, content: [UInt8],
        failover: FailoverPolicy? = nil
    ) throws(ModelError) {
        try Self.checkSizesAndPorts(ports, endpointCount: endpoints.count, of: service)
        assert(
            (try? EndpointSet(source: source, service: service, ports: ports, sortedEndpoints: endpoints.endpoints))?.content == content,
            "assembled content differs")
        self.source = source
        self.service = service
        self.ports = ports
        self.endpointList = endpoints
        self.content = content
        self.contentHash = Self.hash(contentBytes: content)
        self.failover = failover
    }

    /// Content bytes for `ports` and endpoints written by `writeEndpoints` (at most `endpointBytes` of
    /// them, each a field 7 as `Endpoint.writeFramed` writes it), in one allocation.
    package static func assembleContent(
        ports: [ServicePort], endpointBytes: Int, _ writeEndpoints: (UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8>
    ) -> [UInt8] {
        var portBytes = 0
        for port in ports { portBytes += WireFormat.lengthDelimitedSize(port.wire.count) }
        return [UInt8](unsafeUninitializedCapacity: portBytes + endpointBytes) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            var cursor = base
            for port in ports {
                cursor = port.wire.withUnsafeBufferPointer { WireFormat.writeLengthDelimited(6, $0, to: cursor) }
            }
            cursor = writeEndpoints(cursor)
            precondition(cursor - base <= buffer.count, "endpoints overran their room")
            initialized = cursor - base
        }
    }

    /// The checks every set passes whoever builds it: sizes within the limits, port names unique (and
    /// named when there are several).
    private static func checkSizesAndPorts(_ ports: [ServicePort], endpointCount: Int, of service: ServiceKey) throws(ModelError) {
        guard ports.count <= Self.maximumPorts else {
            throw ModelError(.tooLarge, "\(service) declares \(ports.count) ports; at most \(Self.maximumPorts) are allowed")
        }
        guard endpointCount <= Self.maximumEndpoints else {
            throw ModelError(.tooLarge, "\(service) has \(endpointCount) endpoints; at most \(Self.maximumEndpoints) are allowed")
        }
        var portNames = Set<String>()
        for port in ports where !portNames.insert(port.name).inserted {
            throw ModelError(.invalidPort, "\(service) declares port name \(String(reflecting: port.name)) twice")
        }
        if ports.count > 1, portNames.contains("") {
            throw ModelError(.invalidPort, "\(service) has several ports and one of them is unnamed")
        }
    }

    /// `knownHash`: the decoder's hash of the record it came from, already checked to be canonical.
    init(
        source: SourceCluster, service: ServiceKey, ports: [ServicePort], endpoints: [Endpoint], knownHash: UInt64?,
        failover: FailoverPolicy?,
        sorted isSorted: Bool = false
    ) throws(ModelError) {
        try Self.checkSizesAndPorts(ports, endpointCount: endpoints.count, of: service)
        let sorted = knownHash == nil && !isSorted ? endpoints.sorted { $0.addressPrecedes($1) } : endpoints
        for (index, endpoint) in sorted.enumerated() {
            guard endpoint.targetPorts.count == ports.count else {
                throw ModelError(
                    .invalidPort,
                    "endpoint \(endpoint.address) of \(service) maps \(endpoint.targetPorts.count) ports; the service has \(ports.count)")
            }
            if index > 0, !sorted[index - 1].addressPrecedes(endpoint) {
                throw ModelError(
                    .invalidAddress,
                    sorted[index - 1].address == endpoint.address
                        ? "endpoint \(endpoint.address) appears twice in \(service)"
                        : "endpoints of \(service) are not sorted by address")
            }
        }
        self.source = source
        self.service = service
        self.ports = ports
        self.endpointList = .ready(sorted)
        self.failover = failover
        if let knownHash {
            self.content = []
            self.contentHash = knownHash
        } else {
            self.content = Self.contentBytes(ports: ports, endpoints: sorted)
            self.contentHash = Self.hash(contentBytes: content)
        }
    }

    /// An empty set: the service exists but has no endpoints (published as empty, never as absent).
    package static func empty(source: SourceCluster, service: ServiceKey, ports: [ServicePort], failover: FailoverPolicy? = nil)
        throws(ModelError) -> EndpointSet
    {
        try EndpointSet(source: source, service: service, ports: ports, endpoints: [], failover: failover)
    }

    /// `ports` and `endpoints` as a record's fields 6 and 7, from each value's encoding made once
    /// (`wire`): the bytes `hash(content:)` would hash, assembled with one allocation and a copy per value.
    static func contentBytes(ports: [ServicePort], endpoints: [Endpoint]) -> [UInt8] {
        let endpointBytes = endpoints.reduce(0) { $0 + $1.framedCount }
        return assembleContent(ports: ports, endpointBytes: endpointBytes) { start in
            var cursor = start
            for endpoint in endpoints { cursor = endpoint.writeFramed(to: cursor) }
            precondition(cursor - start == endpointBytes)
            return cursor
        }
    }

    /// First 64 bits of SHA-256 of content bytes.
    static func hash(contentBytes bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { hash(contentBytes: $0) }
    }

    static func hash(contentBytes bytes: UnsafeRawBufferPointer) -> UInt64 {
        SHA256.hash(data: bytes).withUnsafeBytes { digest in
            digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    /// SHA-256 (first 64 bits) of a record holding only ports and endpoints. Deterministic: the record
    /// has no maps and fields are written in field-number order.
    static func hash(content: Legation_Store_V1_EndpointSetRecord) -> UInt64 {
        hash(contentBytes: (try? content.serializedBytes()) ?? [])
    }
}

extension EndpointSet {
    /// The content hash first: sets that differ almost always differ there, without walking endpoints.
    public static func == (lhs: EndpointSet, rhs: EndpointSet) -> Bool {
        lhs.contentHash == rhs.contentHash && lhs.failover == rhs.failover && lhs.source == rhs.source && lhs.service == rhs.service
            && lhs.ports == rhs.ports && lhs.endpointCount == rhs.endpointCount && lhs.endpoints == rhs.endpoints
    }
}

extension EndpointSet {
    /// Consistent with `==`: equal sets have equal content hashes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(source)
        hasher.combine(service)
        hasher.combine(contentHash)
        hasher.combine(failover)
    }
}

extension EndpointSet: CustomStringConvertible {
    public var description: String {
        "\(source)/\(service) (\(endpointCount) endpoints, hash \(String(contentHash, radix: 16))\(failover.map { ", failover \($0)" } ?? ""))"
    }
}
