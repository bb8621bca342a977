import Crypto
import NIOCore
import Shared
import SwiftProtobuf

/// One xDS resource at one version, encoded once and shared by every stream that sends it.
///
/// `version` is a content hash of the encoded resource, so every replica that builds the same resource
/// gives it the same version, and an Envoy that reconnects elsewhere is not sent it again.
///
/// A class: immutable and shared, so each stream, snapshot and response holding it costs one reference
/// count rather than one per field.
public final class EncodedResource: Sendable, Hashable {
    public let type: ResourceType
    public let name: String
    /// 16 hex digits: the first 64 bits of the SHA-256 of `resource`.
    public let version: String
    /// The resource message itself (`Cluster`, `ClusterLoadAssignment`).
    public let resource: [UInt8]
    /// The resource wrapped in a `google.protobuf.Any`, as field 2 (`resources`) of a
    /// `DiscoveryResponse`: tag, length and Any. A response is the concatenation of these. A buffer,
    /// so that a transport writes it to every stream that sends this resource without copying it.
    public let responseFieldBuffer: ByteBuffer
    /// The resource as a `Resource {version, resource: Any, name}`, as field 2 (`resources`) of a
    /// `DeltaDiscoveryResponse`.
    public let deltaResponseFieldBuffer: ByteBuffer

    /// `responseFieldBuffer`'s bytes, copied (for whole-message encoders and tests).
    public var responseField: [UInt8] { Array(responseFieldBuffer.readableBytesView) }
    public var deltaResponseField: [UInt8] { Array(deltaResponseFieldBuffer.readableBytesView) }
    /// This (name, version) pair's share of a set's version (see `version(ofSet:)`).
    let memberDigest: UInt64
    /// For a load assignment with several localities under a failover policy: how to make its variant
    /// with priorities for a client's place. nil: every client gets this resource as it is.
    public let priorities: LocalityPriorities?

    public init(type: ResourceType, name: String, resource: [UInt8], priorities: LocalityPriorities? = nil) {
        self.type = type
        self.name = name
        self.resource = resource
        self.priorities = priorities
        self.version = Self.version(of: resource)
        self.memberDigest = Self.memberDigest(name: name, version: version)
        var any: [UInt8] = []
        any.reserveCapacity(resource.count + type.typeURL.utf8.count + 8)
        WireFormat.appendString(1, type.typeURL, to: &any)
        WireFormat.appendLengthDelimited(2, resource, to: &any)
        var field: [UInt8] = []
        field.reserveCapacity(any.count + 6)
        WireFormat.appendLengthDelimited(2, any, to: &field)
        self.responseFieldBuffer = ByteBuffer(bytes: field)
        var wrapped: [UInt8] = []
        wrapped.reserveCapacity(any.count + name.utf8.count + 32)
        WireFormat.appendString(1, version, to: &wrapped)
        WireFormat.appendLengthDelimited(2, any, to: &wrapped)
        WireFormat.appendString(3, name, to: &wrapped)
        var delta: [UInt8] = []
        delta.reserveCapacity(wrapped.count + 6)
        WireFormat.appendLengthDelimited(2, wrapped, to: &delta)
        self.deltaResponseFieldBuffer = ByteBuffer(bytes: delta)
    }

    /// This resource as a client at `locality` gets it: the variant with priorities for its place (made
    /// once and shared), or this resource itself.
    public func localized(for locality: ClientLocality) -> EncodedResource {
        guard let priorities, !locality.isUnknown || priorities.prefersSources else { return self }
        return priorities.resource(for: locality, base: self)
    }

    /// Whether `other` is this resource, the same bytes with the same way of localizing them: what the
    /// resource table compares to decide that nothing changed.
    func isSameContent(as other: EncodedResource?) -> Bool {
        guard let other else { return false }
        return version == other.version && priorities?.policy == other.priorities?.policy
    }

    /// Encodes a message once (deterministically) and wraps it.
    public convenience init(type: ResourceType, name: String, message: some SwiftProtobuf.Message) throws {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        self.init(type: type, name: name, resource: try message.serializedBytes(options: options))
    }

    public static func == (lhs: EncodedResource, rhs: EncodedResource) -> Bool {
        lhs === rhs || lhs.type == rhs.type && lhs.name == rhs.name && lhs.version == rhs.version
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(name)
        hasher.combine(version)
    }

    static func version(of bytes: [UInt8]) -> String {
        hexPrefix(of: SHA256.hash(data: bytes))
    }

    /// The version of a set of resources, used as the `version_info` of a response: the sum (mod 2^64)
    /// of each member's digest, the first 64 bits of SHA-256 over its name and version. The same on
    /// every replica for the same content, independent of order, and made of digests computed once per
    /// resource: a response costs an addition per resource it holds, not a sort and a hash of them all.
    static func version(ofSet members: some Sequence<EncodedResource>) -> String {
        hex(members.reduce(UInt64(0)) { $0 &+ $1.memberDigest })
    }

    static func memberDigest(name: String, version: String) -> UInt64 {
        var hasher = SHA256()
        hasher.update(data: Array(name.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(version.utf8))
        return hasher.finalize().withUnsafeBytes { $0.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
    }

    static func hex(_ value: UInt64) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(16)
        for shift in stride(from: 60, through: 0, by: -4) { text.append(digits[Int((value >> UInt64(shift)) & 0xf)]) }
        return String(decoding: text, as: UTF8.self)
    }

    private static func hexPrefix(of digest: SHA256.Digest) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(16)
        for byte in digest.prefix(8) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
