import Foundation

/// An object the Kubernetes client can read from a list page or a watch event.
public protocol KubernetesReadable: Sendable {
    init(reading reader: inout JSONReader) throws(JSONReader.Failure)
}

extension KubernetesReadable {
    /// Reads one JSON document as this object.
    public init<Bytes: Collection>(json bytes: Bytes) throws(JSONReader.Failure) where Bytes.Element == UInt8 {
        self = try JSONReader.parse(bytes) { (reader: inout JSONReader) throws(JSONReader.Failure) in try Self(reading: &reader) }
    }
}
