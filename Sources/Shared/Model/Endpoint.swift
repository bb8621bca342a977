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

    /// The fields, in one immutable box: an endpoint is copied (merged, sorted, put in sets and
    /// snapshots) far more often than made, and a copy is then one reference count, not seven.
    private final class Storage: Sendable {
        let address: String
        let targetPorts: [UInt16]
        let zone: String
        let node: String
        let hostname: String
        let targetPod: String
        let conditions: Conditions
        let wire: [UInt8]
        /// The address's first 16 UTF-8 bytes, big-endian, zero-padded: comparing these pairs orders
        /// addresses as comparing their text does, except when both start with the same 16 bytes.
        let orderKey: (UInt64, UInt64)

        init(
            address: String, targetPorts: [UInt16], zone: String, node: String, hostname: String, targetPod: String, conditions: Conditions,
            wire: [UInt8]
        ) {
            var key: (UInt64, UInt64) = (0, 0)
            for (index, byte) in address.utf8.prefix(16).enumerated() {
                if index < 8 {
                    key.0 |= UInt64(byte) << UInt64(56 - 8 * index)
                } else {
                    key.1 |= UInt64(byte) << UInt64(56 - 8 * (index - 8))
                }
            }
            self.orderKey = key
            self.address = address
            self.targetPorts = targetPorts
            self.zone = zone
            self.node = node
            self.hostname = hostname
            self.targetPod = targetPod
            self.conditions = conditions
            self.wire = wire
        }
    }

    private let storage: Storage

    /// Canonical IPv4 or IPv6 text.
    public var address: String { storage.address }
    /// Target port per service port, index-aligned with `EndpointSet.ports`; 0 where this endpoint
    /// does not serve that port.
    public var targetPorts: [UInt16] { storage.targetPorts }
    public var zone: String { storage.zone }
    public var node: String { storage.node }
    public var hostname: String { storage.hostname }
    /// `namespace/name` of the pod behind this endpoint, or empty.
    public var targetPod: String { storage.targetPod }
    public var conditions: Conditions { storage.conditions }
    /// This endpoint as an encoded `legation.store.v1.Endpoint`, made once by writers: hashing a set
    /// and writing its record concatenate these instead of encoding every endpoint again. Empty for
    /// endpoints decoded from a record (readers never re-encode); `encoded` fills in.
    var wire: [UInt8] { storage.wire }

    /// Bytes `writeFramed` writes.
    package var framedCount: Int { WireFormat.lengthDelimitedSize(storage.wire.isEmpty ? encoded.count : storage.wire.count) }

    /// Writes this endpoint as a set's field 7 at `target` (room for it made by the caller, from
    /// `framedCount`; see `EndpointSet.assembleContent`). - Returns: where it ends. (An endpoint decoded
    /// from a record has no `wire` and is encoded for each call: only a reader's set written back, never
    /// on a writer's path.)
    package func writeFramed(to target: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
        if storage.wire.isEmpty {
            return encoded.withUnsafeBufferPointer { WireFormat.writeLengthDelimited(7, $0, to: target) }
        }
        return storage.wire.withUnsafeBufferPointer { WireFormat.writeLengthDelimited(7, $0, to: target) }
    }

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
        // Field by field (no array of pairs per endpoint: 50,000 of them in an initial list).
        let invalid: String? =
            !DNSName.isToken(zone)
            ? "zone"
            : !DNSName.isToken(node)
                ? "node"
                : !DNSName.isToken(hostname)
                    ? "hostname"
                    : !DNSName.isToken(targetPod) ? "targetPod" : nil
        if let invalid {
            throw ModelError(.invalidField, "endpoint \(canonical) has a \(invalid) that is not a printable token of at most 253 bytes")
        }
        let wire =
            encode
            ? Self.wire(
                address: canonical.text, targetPorts: targetPorts, zone: zone, node: node, hostname: hostname, targetPod: targetPod,
                conditions: conditions)
            : []
        storage = Storage(
            address: canonical.text, targetPorts: targetPorts, zone: zone, node: node, hostname: hostname, targetPod: targetPod,
            conditions: conditions, wire: wire)
    }

    /// The encoded `legation.store.v1.Endpoint`, written by hand: SwiftProtobuf's bytes (a test
    /// compares them), at a fraction of its cost per endpoint of an initial list.
    static func wire(
        address: String, targetPorts: [UInt16], zone: String, node: String, hostname: String, targetPod: String, conditions: Conditions
    ) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            address.utf8.count + zone.utf8.count + node.utf8.count + hostname.utf8.count + targetPod.utf8.count + 3 * targetPorts.count + 20
        )
        WireFormat.appendString(1, address, to: &bytes)
        if !targetPorts.isEmpty {
            WireFormat.appendField(2, length: targetPorts.reduce(0) { $0 + WireFormat.varintSize(UInt64($1)) }, to: &bytes)
            for port in targetPorts { WireFormat.appendVarint(UInt64(port), to: &bytes) }
        }
        WireFormat.appendString(3, zone, to: &bytes)
        WireFormat.appendString(4, node, to: &bytes)
        WireFormat.appendString(5, hostname, to: &bytes)
        WireFormat.appendString(6, targetPod, to: &bytes)
        WireFormat.appendVarintField(7, conditions.ready ? 1 : 0, to: &bytes)
        WireFormat.appendVarintField(8, conditions.serving ? 1 : 0, to: &bytes)
        WireFormat.appendVarintField(9, conditions.terminating ? 1 : 0, to: &bytes)
        return bytes
    }

    public static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
        if lhs.storage === rhs.storage { return true }
        return lhs.address == rhs.address && lhs.targetPorts == rhs.targetPorts && lhs.zone == rhs.zone && lhs.node == rhs.node
            && lhs.hostname == rhs.hostname && lhs.targetPod == rhs.targetPod && lhs.conditions == rhs.conditions
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(address)
        hasher.combine(targetPorts)
        hasher.combine(conditions)
    }

    /// The address's first 16 bytes as two big-endian words: when two endpoints' keys differ, they order
    /// as their addresses do; when they are equal, compare with `addressPrecedes` (for code that
    /// compares many times and keeps the keys at hand).
    public var addressOrderKey: (UInt64, UInt64) { storage.orderKey }

    /// Whether this endpoint's address sorts before `other`'s (as `address < other.address`, without
    /// comparing text unless the first 16 bytes are equal: the merges and checks of every set use it).
    @inline(__always)
    public func addressPrecedes(_ other: Endpoint) -> Bool {
        let a = storage.orderKey
        let b = other.storage.orderKey
        if a.0 != b.0 { return a.0 < b.0 }
        if a.1 != b.1 { return a.1 < b.1 }
        return storage.address < other.storage.address
    }

    /// Whether both endpoints have the same address.
    @inline(__always)
    public func hasAddress(of other: Endpoint) -> Bool {
        let a = storage.orderKey
        let b = other.storage.orderKey
        return a.0 == b.0 && a.1 == b.1 && storage.address == other.storage.address
    }

    /// True for IPv6 addresses.
    public var isIPv6: Bool { address.utf8.contains(UInt8(ascii: ":")) }
}
