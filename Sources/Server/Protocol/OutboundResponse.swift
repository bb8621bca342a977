import Shared

/// One state-of-the-world `DiscoveryResponse` the state machine decided to send: the resources are
/// shared encoded values; `encoded()` concatenates their bytes behind a small header.
public struct OutboundResponse: Sendable, Hashable {
    public var type: ResourceType
    public var versionInfo: String
    public var nonce: String
    public var resources: [EncodedResource]

    public init(type: ResourceType, versionInfo: String, nonce: String, resources: [EncodedResource]) {
        self.type = type
        self.versionInfo = versionInfo
        self.nonce = nonce
        self.resources = resources
    }

    /// The `DiscoveryResponse` bytes: version_info (1), resources (2), type_url (4), nonce (5),
    /// control_plane.identifier (6). No resource is encoded again.
    public func encoded(controlPlane: String = "") -> [UInt8] {
        var bytes = head(controlPlane: controlPlane)
        bytes.reserveCapacity(resources.reduce(96 + controlPlane.utf8.count) { $0 + $1.responseFieldBuffer.readableBytes })
        for resource in resources { bytes.append(contentsOf: resource.responseFieldBuffer.readableBytesView) }
        bytes += tail(controlPlane: controlPlane)
        return bytes
    }

    /// The fields before the resources: version_info.
    public func head(controlPlane: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(versionInfo.utf8.count + 6)
        WireFormat.appendString(1, versionInfo, to: &bytes)
        return bytes
    }

    /// The fields after the resources: type_url, nonce, control_plane.
    public func tail(controlPlane: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(80 + controlPlane.utf8.count)
        WireFormat.appendString(4, type.typeURL, to: &bytes)
        WireFormat.appendString(5, nonce, to: &bytes)
        if !controlPlane.isEmpty {
            WireFormat.appendField(6, length: WireFormat.lengthDelimitedSize(controlPlane.utf8.count), to: &bytes)
            WireFormat.appendString(1, controlPlane, to: &bytes)
        }
        return bytes
    }
}
