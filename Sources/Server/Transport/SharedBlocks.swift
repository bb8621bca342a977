import NIOCore
import Synchronization

/// The resource fields of a large response, concatenated once and shared by every stream that sends
/// the same resources in the same order: a reconnect storm asks 1,000 streams for the same 1,000
/// assignments, and one buffer (written as one DATA payload, which HTTP/2 slices into frames without
/// copying) costs less than 1,000 DATA frames per stream. A few recent blocks are kept; a block is
/// found by the identity of its resources, so it can never serve a different version.
final class SharedBlocks: Sendable {
    private struct Block {
        var delta: Bool
        var resources: [EncodedResource]
        var bytes: ByteBuffer
    }

    /// Responses with fewer resources are written resource by resource (or copied whole when small).
    static let minimumResources = 32

    private let blocks = Mutex<[Block]>([])
    private let capacity: Int

    init(capacity: Int = 8) {
        self.capacity = capacity
    }

    /// The concatenated fields of `resources`, made at most once while it stays among the recent.
    func block(delta: Bool, resources: [EncodedResource], fields: [ByteBuffer]) -> ByteBuffer {
        if let found = blocks.withLock({ blocks -> ByteBuffer? in
            guard let index = blocks.firstIndex(where: { Self.same($0, delta: delta, resources: resources) }) else { return nil }
            let block = blocks.remove(at: index)
            blocks.insert(block, at: 0)
            return block.bytes
        }) {
            return found
        }
        var bytes = ByteBuffer()
        bytes.reserveCapacity(fields.reduce(0) { $0 + $1.readableBytes })
        for field in fields { bytes.writeImmutableBuffer(field) }
        blocks.withLock { blocks in
            guard !blocks.contains(where: { Self.same($0, delta: delta, resources: resources) }) else { return }
            blocks.insert(Block(delta: delta, resources: resources, bytes: bytes), at: 0)
            if blocks.count > capacity { blocks.removeLast() }
        }
        return bytes
    }

    private static func same(_ block: Block, delta: Bool, resources: [EncodedResource]) -> Bool {
        block.delta == delta && block.resources.count == resources.count && zip(block.resources, resources).allSatisfy { $0 === $1 }
    }
}
