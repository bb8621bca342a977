import NIOCore
import Shared
import Testing

@testable import RedisStore

/// hiredis's reader and formatter through our wrappers, fed byte by byte and with hostile input.
@Suite struct RESPDecoderTests {
    private func decode(_ text: String, limit: Int = 1 << 20, chunk: Int = 1) throws -> [RESPValue] {
        let decoder = RESPDecoder(maximumReplyBytes: limit)
        var values: [RESPValue] = []
        let bytes = Array(text.utf8)
        for start in stride(from: 0, to: bytes.count, by: chunk) {
            try decoder.feed(ByteBuffer(bytes: bytes[start..<min(start + chunk, bytes.count)]))
            while let value = try decoder.next() { values.append(value) }
        }
        return values
    }

    @Test func decodesEveryReplyTypeAcrossChunkBoundaries() throws {
        let wire = "+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*3\r\n:1\r\n*1\r\n$0\r\n\r\n*-1\r\n"
        let expected: [RESPValue] = [
            .simpleString("OK"), .error("ERR bad"), .integer(42), .bulkString(Array("hello".utf8)), .null,
            .array([.integer(1), .array([.bulkString([])]), .null])
        ]
        for chunk in [1, 3, 7, 1000] {
            #expect(try decode(wire, chunk: chunk) == expected)
        }
    }

    @Test func garbageIsAProtocolErrorNotACrash() {
        #expect(throws: RESPDecoder.Failure.self) { try decode("?what\r\n") }
        #expect(throws: RESPDecoder.Failure.self) { try decode(":notanumber\r\n") }
    }

    @Test func aReplyBeyondTheLimitIsRefused() {
        #expect(throws: RESPDecoder.Failure.self) {
            try decode("$100000\r\n" + String(repeating: "x", count: 2000), limit: 1024, chunk: 512)
        }
    }

    @Test func theFormatterWritesRESP() {
        var buffer = ByteBuffer()
        RESPEncoder.encode(["SET", "k", RedisArgument([0, 13, 10])], into: &buffer)
        #expect(buffer.readString(length: buffer.readableBytes) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\0\r\n\r\n")
    }
}
