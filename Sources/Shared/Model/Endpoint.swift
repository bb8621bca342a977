/// One network endpoint (usually a pod) of a service in one source cluster.
public struct Endpoint: Hashable, Sendable {
    /// EndpointSlice conditions, resolved: Kubernetes' "unknown" ready/serving already mapped by the
    /// source (an absent `ready` means ready; an absent `serving` means the same as `ready`).
    public struct Conditions: Hashable, Sendable {
        public var ready: Bool
        public var serving: Bool
        public var terminating: Bool

        public init(ready: Bool, serving: Bool, terminating: Bool) {
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
        }

        public static let ready = Conditions(ready: true, serving: true, terminating: false)
    }

    /// Canonical IPv4 or IPv6 text.
    public let address: String
    /// Target port per service port, index-aligned with `EndpointSet.ports`; 0 where this endpoint
    /// does not serve that port.
    public let targetPorts: [UInt16]
    public let zone: String
    public let node: String
    public let hostname: String
    /// `namespace/name` of the pod behind this endpoint, or empty.
    public let targetPod: String
    public let conditions: Conditions
    /// This endpoint as an encoded `legation.store.v1.Endpoint`, made once by writers: hashing a set
    /// and writing its record concatenate these instead of encoding every endpoint again. Empty for
    /// endpoints decoded from a record (readers never re-encode); `encoded` fills in.
    private(set) var wire: [UInt8] = []

    /// The encoding (`wire`, or made now).
    var encoded: [UInt8] { wire.isEmpty ? ((try? record.serializedBytes()) ?? []) : wire }

    /// - Throws: `ModelError` for an address that is not IPv4/IPv6 or fields that are not printable tokens.
    public init(
        address: String,
        targetPorts: [UInt16],
        zone: String = "",
        node: String = "",
        hostname: String = "",
        targetPod: String = "",
        conditions: Conditions = .ready
    ) throws(ModelError) {
        try self.init(
            address: address, targetPorts: targetPorts, zone: zone, node: node, hostname: hostname, targetPod: targetPod,
            conditions: conditions, encode: true)
    }

    init(
        address: String, targetPorts: [UInt16], zone: String, node: String, hostname: String, targetPod: String,
        conditions: Conditions, encode: Bool
    ) throws(ModelError) {
        guard let canonical = IPAddress.canonical(address) else {
            throw ModelError(.invalidAddress, "endpoint address \(String(reflecting: address.prefix(64))) is not an IP address")
        }
        for (field, value) in [("zone", zone), ("node", node), ("hostname", hostname), ("targetPod", targetPod)]
        where !DNSName.isToken(value) {
            throw ModelError(.invalidField, "endpoint \(canonical) has a \(field) that is not a printable token of at most 253 bytes")
        }
        self.address = canonical.text
        self.targetPorts = targetPorts
        self.zone = zone
        self.node = node
        self.hostname = hostname
        self.targetPod = targetPod
        self.conditions = conditions
        if encode { self.wire = (try? record.serializedBytes()) ?? [] }
    }

    public static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
        lhs.address == rhs.address && lhs.targetPorts == rhs.targetPorts && lhs.zone == rhs.zone && lhs.node == rhs.node
            && lhs.hostname == rhs.hostname && lhs.targetPod == rhs.targetPod && lhs.conditions == rhs.conditions
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(address)
        hasher.combine(targetPorts)
        hasher.combine(conditions)
    }

    /// True for IPv6 addresses.
    public var isIPv6: Bool { address.utf8.contains(UInt8(ascii: ":")) }
}
