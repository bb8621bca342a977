import CHiredis
import NIOCore

/// hiredis's RESP reader, fed from any byte transport. Not thread-safe: one per connection, used only on
/// that connection's event loop.
final class RESPDecoder {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let reader: UnsafeMutablePointer<redisReader>
    /// Replies larger than this (bytes buffered without a complete reply) are a protocol error.
    private let maximumBuffered: Int
    private var buffered = 0

    init(maximumReplyBytes: Int) {
        guard let reader = redisReaderCreate() else { fatalError("hiredis could not allocate a reader") }
        self.reader = reader
        self.maximumBuffered = maximumReplyBytes
    }

    deinit { redisReaderFree(reader) }

    func feed(_ buffer: ByteBuffer) throws(Failure) {
        buffered += buffer.readableBytes
        guard buffered <= maximumBuffered else {
            throw Failure(description: "a reply exceeds \(maximumBuffered) bytes")
        }
        let status = buffer.withUnsafeReadableBytes { bytes in
            redisReaderFeed(reader, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
        }
        guard status == REDIS_OK else { throw Failure(description: readerError()) }
    }

    /// The next complete reply, or nil if more bytes are needed.
    func next() throws(Failure) -> RESPValue? {
        var reply: UnsafeMutableRawPointer?
        guard redisReaderGetReply(reader, &reply) == REDIS_OK else { throw Failure(description: readerError()) }
        guard let reply else { return nil }
        defer { freeReplyObject(reply) }
        let value = Self.convert(reply.assumingMemoryBound(to: redisReply.self))
        buffered = reader.pointee.len - reader.pointee.pos
        return value
    }

    private func readerError() -> String {
        withUnsafeBytes(of: reader.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    private static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .bulkString(bytes(value.str, value.len))
        case REDIS_REPLY_STATUS:
            return .simpleString(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RESPValue] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(convert(element)) }
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
