import Crypto
import Shared
import SwiftProtobuf

/// One xDS resource at one version, encoded once and shared by every stream that sends it.
///
/// `version` is a content hash of the encoded resource, so every replica that builds the same resource
/// gives it the same version, and an Envoy that reconnects elsewhere is not sent it again.
public struct EncodedResource: Sendable, Hashable {
    public let type: ResourceType
    public let name: String
    /// 16 hex digits: the first 64 bits of the SHA-256 of `resource`.
    public let version: String
    /// The resource message itself (`Cluster`, `ClusterLoadAssignment`).
    public let resource: [UInt8]
    /// The resource wrapped in a `google.protobuf.Any`, as field 2 (`resources`) of a
    /// `DiscoveryResponse`: tag, length and Any. A response is the concatenation of these.
    public let responseField: [UInt8]
    /// The resource as a `Resource {version, resource: Any, name}`, as field 2 (`resources`) of a
    /// `DeltaDiscoveryResponse`.
    public let deltaResponseField: [UInt8]

    public init(type: ResourceType, name: String, resource: [UInt8]) {
        self.type = type
        self.name = name
        self.resource = resource
        self.version = Self.version(of: resource)
        var any: [UInt8] = []
        any.reserveCapacity(resource.count + type.typeURL.utf8.count + 8)
        WireFormat.appendString(1, type.typeURL, to: &any)
        WireFormat.appendField(2, length: resource.count, to: &any)
        any += resource
        var field: [UInt8] = []
        field.reserveCapacity(any.count + 6)
        WireFormat.appendField(2, length: any.count, to: &field)
        field += any
        self.responseField = field
        var wrapped: [UInt8] = []
        wrapped.reserveCapacity(any.count + name.utf8.count + 32)
        WireFormat.appendString(1, version, to: &wrapped)
        WireFormat.appendField(2, length: any.count, to: &wrapped)
        wrapped += any
        WireFormat.appendString(3, name, to: &wrapped)
        var delta: [UInt8] = []
        delta.reserveCapacity(wrapped.count + 6)
        WireFormat.appendField(2, length: wrapped.count, to: &delta)
        delta += wrapped
        self.deltaResponseField = delta
    }

    /// Encodes a message once (deterministically) and wraps it.
    public init(type: ResourceType, name: String, message: some SwiftProtobuf.Message) throws {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        self.init(type: type, name: name, resource: try message.serializedBytes(options: options))
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.type == rhs.type && lhs.name == rhs.name && lhs.version == rhs.version
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(type)
        hasher.combine(name)
        hasher.combine(version)
    }

    static func version(of bytes: [UInt8]) -> String {
        hexPrefix(of: SHA256.hash(data: bytes))
    }

    /// The version of a set of resources: a hash over their sorted (name, version) pairs. Used as the
    /// `version_info` of a response, so it is the same on every replica for the same content.
    static func version<S: Sequence>(ofSet members: S) -> String where S.Element == (key: String, value: String) {
        var hasher = SHA256()
        for (name, version) in members.sorted(by: { $0.key < $1.key }) {
            hasher.update(data: Array(name.utf8))
            hasher.update(data: [0])
            hasher.update(data: Array(version.utf8))
            hasher.update(data: [0])
        }
        return hexPrefix(of: hasher.finalize())
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
