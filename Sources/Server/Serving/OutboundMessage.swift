import EnvoyAPI
import NIOCore
import SwiftProtobuf

/// A response a stream machine decided to send: its type, how many resources, and its bytes, whole
/// (`encoded`) or in three parts for a transport that sends shared bytes as they are: the fields before
/// the resources, each resource's field (encoded once, shared by every stream), the fields after.
/// Protobuf fields may come in any order, so the parts need not follow field numbers.
public protocol OutboundMessage: Sendable, Equatable {
    var type: ResourceType { get }
    var resourceCount: Int { get }
    func encoded(controlPlane: String) -> [UInt8]
    func head(controlPlane: String) -> [UInt8]
    /// Each resource's field of the message, shared.
    var resourceFields: [ByteBuffer] { get }
    /// The resources, in the order of `resourceFields`, and which of their encodings the fields are.
    var encodedResources: [EncodedResource] { get }
    static var usesDeltaFields: Bool { get }
    func tail(controlPlane: String) -> [UInt8]
}
