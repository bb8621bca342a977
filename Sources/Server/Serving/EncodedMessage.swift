import GRPCCore

/// A response message already encoded: the gRPC layer writes its bytes as they are.
public struct EncodedMessage: Sendable {
    public let bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

/// Serializes `EncodedMessage` by handing its bytes over: resources are never encoded per stream.
struct EncodedMessageSerializer: MessageSerializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: EncodedMessage) throws -> Bytes {
        Bytes(message.bytes)
    }
}
