import NIOCore
import NIOHPACK
import Testing

@testable import Server

/// The xDS listener's HTTP/2 framing without a socket: bytes in any split become the same frames and
/// whole header blocks; what goes out is framed as RFC 9113 says, large payloads as the buffers they are.
@Suite struct HTTP2FramingTests {
    typealias Client = RawHTTP2Client

    /// Everything the reader yields for `bytes` fed in pieces of `piece` bytes, described.
    static func read(_ bytes: [UInt8], piece: Int) throws -> [String] {
        var reader = HTTP2FrameReader(maximumHeaderBlockBytes: 64 * 1024)
        var items: [String] = []
        var offset = 0
        while offset < bytes.count {
            reader.append(ByteBuffer(bytes: bytes[offset..<min(bytes.count, offset + piece)]))
            offset += piece
            while let item = try reader.next() {
                switch item {
                case .frame(let header, let payload):
                    items.append("frame \(header.type) stream \(header.streamID) \(Array(buffer: payload))")
                case .headerBlock(let id, let endStream, let block): items.append("block \(id) end \(endStream) \(Array(buffer: block))")
                case .notHTTP2(let prefix): items.append("not HTTP/2 \(prefix.count)")
                }
            }
        }
        return items
    }

    @Test func frameBoundariesDoNotDependOnHowBytesArrive() throws {
        let padded = HTTP2Wire.Flag.padded | HTTP2Wire.Flag.priority
        let bytes =
            HTTP2Wire.clientPreface + Client.frame(.settings, payload: [0, 4, 0, 0, 0, 100])
            // HEADERS with 2 bytes of padding and a priority, continued twice.
            + Client.frame(.headers, flags: padded, stream: 1, payload: [2, 0, 0, 0, 0, 16, 0x83, 0x84, 0, 0])
            + Client.frame(.continuation, stream: 1, payload: [0x86])
            + Client.frame(.continuation, flags: HTTP2Wire.Flag.endHeaders, stream: 1, payload: [0x87])
            + Client.frame(.data, flags: HTTP2Wire.Flag.endStream, stream: 1, payload: [0, 0, 0, 0, 0])
        let expected = [
            "frame 4 stream 0 [0, 4, 0, 0, 0, 100]", "block 1 end false [131, 132, 134, 135]", "frame 0 stream 1 [0, 0, 0, 0, 0]"
        ]
        for piece in [1, 2, 7, 9, 24, 1000] {
            #expect(try Self.read(bytes, piece: piece) == expected, "in pieces of \(piece)")
        }
        #expect(try Self.read(Array("GET / HTTP/1.1\r\n".utf8), piece: 100) == ["not HTTP/2 16"])
        #expect(throws: HTTP2Wire.ConnectionError.self) {
            try Self.read(HTTP2Wire.clientPreface + Client.frame(.ping, payload: [UInt8](repeating: 0, count: 8)), piece: 100)
        }
    }

    @Test func headersAboveTheFrameSizeContinueAndLargeDataIsNotCopied() throws {
        var writer = HTTP2FrameWriter(allocator: ByteBufferAllocator())
        let message = String(repeating: "x", count: 40_000)
        writer.headers(["grpc-status": "13", "grpc-message": message], endStream: true, stream: 3)
        let taken = writer.take()
        var bytes = try #require(taken)
        var types: [UInt8] = []
        var flags: [UInt8] = []
        var block = ByteBuffer()
        while let header = HTTP2Wire.FrameHeader.peek(bytes) {
            bytes.moveReaderIndex(forwardBy: HTTP2Wire.frameHeaderBytes)
            var payload = bytes.readSlice(length: header.length)!
            #expect(header.length <= HTTP2Wire.defaultMaximumFrameBytes && header.streamID == 3)
            types.append(header.type)
            flags.append(header.flags)
            block.writeBuffer(&payload)
        }
        #expect(types == [1, 9, 9], "HEADERS, then CONTINUATION")
        #expect(flags == [HTTP2Wire.Flag.endStream, 0, HTTP2Wire.Flag.endHeaders])
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator(), maxDynamicTableSize: 4096, maxHeaderListSize: 1 << 20)
        #expect(try decoder.decodeHeaders(from: &block).first(name: "grpc-message") == message)

        writer.ping(7, ack: true)
        let shared = ByteBuffer(repeating: 1, count: 10_000)
        var written: [ByteBuffer] = []
        writer.data(shared, stream: 5) { written.append($0) }
        let left = writer.take()
        #expect(left == nil)
        #expect(written.count == 2, "what was gathered (the PING and the DATA frame's header), then the payload")
        #expect(written.first?.readableBytes == 2 * HTTP2Wire.frameHeaderBytes + 8)
        let sameStorage = written.last?.withUnsafeReadableBytes { $0.baseAddress } == shared.withUnsafeReadableBytes { $0.baseAddress }
        #expect(sameStorage, "the payload is the shared buffer, not a copy")
    }

    /// A client's SETTINGS: known values pass, unknown identifiers are left out, and each value RFC 9113
    /// §6.5.2 forbids is the connection error it names.
    @Test func settingsAreCheckedAsTheRFCSays() throws {
        func settings(_ values: [(UInt16, UInt32)], length: Int? = nil) throws(HTTP2Wire.ConnectionError) -> [(HTTP2Wire.Setting, Int)] {
            var payload = ByteBuffer()
            for (identifier, value) in values { payload.writeMultipleIntegers(identifier, value) }
            let header = HTTP2Wire.FrameHeader(length: length ?? payload.readableBytes, type: 4, flags: 0, streamID: 0)
            return try HTTP2Wire.settings(header, payload)
        }
        func code(_ values: [(UInt16, UInt32)], length: Int? = nil) -> HTTP2Wire.ErrorCode? {
            do throws(HTTP2Wire.ConnectionError) {
                _ = try settings(values, length: length)
                return nil
            } catch {
                return error.code
            }
        }
        let read = try settings([(4, 100), (0x99, 7), (5, 32_768), (2, 0), (1, 0)])
        #expect(read.map(\.0) == [.initialWindowSize, .maximumFrameSize, .enablePush, .headerTableSize])
        #expect(read.map(\.1) == [100, 32_768, 0, 0])
        #expect(code([(4, 1 << 31)]) == .flowControlError)
        #expect(code([(5, 16_383)]) == .protocolError)
        #expect(code([(5, 1 << 24)]) == .protocolError)
        #expect(code([(2, 2)]) == .protocolError)
        #expect(code([(4, 1)], length: 7) == .frameSizeError)
    }

    /// A window this side grants: what arrives beyond it is refused; half of it used is granted again in
    /// one update; a connection's opens from HTTP/2's default to its size.
    @Test func aReceiveWindowIsGrantedAgainAtHalf() {
        var window = ReceiveWindow(size: 1000, available: 1000)
        let steps = [
            window.receive(499), window.takeUpdate() == nil, window.receive(1), window.takeUpdate() == 500,
            window.receive(1000),  // the update opened it again
            !window.receive(1)  // one byte beyond the window
        ]
        #expect(steps == [true, true, true, true, true, true])

        var connection = ReceiveWindow(size: 1 << 20, available: HTTP2Wire.defaultWindow)
        let opened = [connection.open(), connection.open()]
        #expect(opened == [(1 << 20) - HTTP2Wire.defaultWindow, nil], "opened once")
        let whole = connection.receive(1 << 20)
        #expect(whole)
    }
}
