import Shared

/// One `DeltaDiscoveryResponse` to send; `encoded()` concatenates the shared resource bytes.
public struct OutboundDeltaResponse: Sendable, Hashable {
    public var type: ResourceType
    public var systemVersionInfo: String
    public var nonce: String
    public var resources: [EncodedResource]
    public var removed: [String]

    public init(type: ResourceType, systemVersionInfo: String, nonce: String, resources: [EncodedResource], removed: [String]) {
        self.type = type
        self.systemVersionInfo = systemVersionInfo
        self.nonce = nonce
        self.resources = resources
        self.removed = removed
    }

    /// system_version_info (1), resources (2), type_url (4), nonce (5), removed_resources (6),
    /// control_plane.identifier (7).
    public func encoded(controlPlane: String = "") -> [UInt8] {
        var bytes = head(controlPlane: controlPlane)
        bytes.reserveCapacity(
            resources.reduce(96 + controlPlane.utf8.count + removed.reduce(0) { $0 + $1.utf8.count + 3 }) {
                $0 + $1.deltaResponseFieldBuffer.readableBytes
            })
        for resource in resources { bytes.append(contentsOf: resource.deltaResponseFieldBuffer.readableBytesView) }
        bytes += tail(controlPlane: controlPlane)
        return bytes
    }

    /// The fields before the resources: system_version_info.
    public func head(controlPlane: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(systemVersionInfo.utf8.count + 6)
        WireFormat.appendString(1, systemVersionInfo, to: &bytes)
        return bytes
    }

    /// The fields after the resources: type_url, nonce, removed_resources, control_plane.
    public func tail(controlPlane: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(80 + controlPlane.utf8.count)
        WireFormat.appendString(4, type.typeURL, to: &bytes)
        WireFormat.appendString(5, nonce, to: &bytes)
        for name in removed {
            WireFormat.appendLengthDelimited(6, name.utf8, to: &bytes)
        }
        if !controlPlane.isEmpty {
            var inner: [UInt8] = []
            WireFormat.appendString(1, controlPlane, to: &inner)
            WireFormat.appendLengthDelimited(7, inner, to: &bytes)
        }
        return bytes
    }
}
