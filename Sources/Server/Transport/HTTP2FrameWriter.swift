import NIOCore
import NIOHPACK

/// A server connection's outbound HTTP/2 frames. Frames and small payloads are gathered into one
/// buffer until `take()` (one write per flush); a large DATA payload goes out as the shared buffer it
/// is, after what was gathered before it. Flow control is the connection's business. Socket-free.
struct HTTP2FrameWriter {
    /// DATA payloads up to this size are copied behind their frame header; a copy of a few KB costs
    /// less than a write of its own.
    static let copyPayloadBelowBytes = 4096

    let allocator: ByteBufferAllocator
    /// The client's SETTINGS_MAX_FRAME_SIZE.
    var maximumFrameBytes = HTTP2Wire.defaultMaximumFrameBytes
    private var gathered: ByteBuffer?

    init(allocator: ByteBufferAllocator) {
        self.allocator = allocator
    }

    /// What was gathered since the last call.
    mutating func take() -> ByteBuffer? {
        defer { gathered = nil }
        return gathered
    }

    mutating func frame(
        _ type: HTTP2Wire.FrameType, flags: UInt8 = 0, stream: UInt32 = 0, length: Int, payload: (inout ByteBuffer) -> Void
    ) {
        gather(reserving: HTTP2Wire.frameHeaderBytes + length) { buffer in
            HTTP2Wire.FrameHeader(length: length, type: type.rawValue, flags: flags, streamID: stream).write(to: &buffer)
            payload(&buffer)
        }
    }

    /// A DATA frame of `payload` (at most `maximumFrameBytes`). A large one is handed to `write` as it
    /// is, after what was gathered before it (which `write` gets first).
    mutating func data(_ payload: ByteBuffer, stream: UInt32, write: (ByteBuffer) -> Void) {
        var payload = payload
        let length = payload.readableBytes
        guard length > Self.copyPayloadBelowBytes else {
            return frame(.data, stream: stream, length: length) { $0.writeBuffer(&payload) }
        }
        frame(.data, stream: stream, length: length) { _ in }
        if let before = take() { write(before) }
        write(payload)
    }

    /// One gRPC message in one DATA frame, its bytes appended by `body` straight into the gathered
    /// buffer: the length-prefixed message is never built on its own.
    mutating func message(length: Int, stream: UInt32, body: (inout ByteBuffer) -> Void) {
        frame(.data, stream: stream, length: 5 + length) { buffer in
            buffer.writeMultipleIntegers(UInt8(0), UInt32(length))
            body(&buffer)
        }
    }

    /// HEADERS, and CONTINUATION frames for what does not fit one frame.
    mutating func headers(_ headers: HPACKHeaders, endStream: Bool, stream: UInt32) {
        var block = allocator.buffer(capacity: 128)
        HTTP2Wire.headerBlock(headers, into: &block)
        var type = HTTP2Wire.FrameType.headers
        var flags = endStream ? HTTP2Wire.Flag.endStream : 0
        repeat {
            var chunk = block.readSlice(length: min(block.readableBytes, maximumFrameBytes))!
            if block.readableBytes == 0 { flags |= HTTP2Wire.Flag.endHeaders }
            frame(type, flags: flags, stream: stream, length: chunk.readableBytes) { $0.writeBuffer(&chunk) }
            (type, flags) = (.continuation, 0)
        } while block.readableBytes > 0
    }

    mutating func windowUpdate(stream: UInt32, increment: Int) {
        frame(.windowUpdate, stream: stream, length: 4) { $0.writeInteger(UInt32(increment)) }
    }

    mutating func rstStream(_ stream: UInt32, _ code: HTTP2Wire.ErrorCode) {
        frame(.rstStream, stream: stream, length: 4) { $0.writeInteger(code.rawValue) }
    }

    mutating func ping(_ data: UInt64, ack: Bool) {
        frame(.ping, flags: ack ? HTTP2Wire.Flag.ack : 0, length: 8) { $0.writeInteger(data) }
    }

    mutating func settings(_ settings: [(HTTP2Wire.Setting, Int)]) {
        frame(.settings, length: settings.count * 6) { buffer in
            for (setting, value) in settings { buffer.writeMultipleIntegers(setting.rawValue, UInt32(value)) }
        }
    }

    mutating func settingsAcknowledgement() {
        frame(.settings, flags: HTTP2Wire.Flag.ack, length: 0) { _ in }
    }

    mutating func goAway(lastStreamID: UInt32, _ code: HTTP2Wire.ErrorCode, reason: String?) {
        let debug = Array((reason ?? "").utf8.prefix(256))
        frame(.goAway, length: 8 + debug.count) { buffer in
            buffer.writeMultipleIntegers(lastStreamID, code.rawValue)
            buffer.writeBytes(debug)
        }
    }

    private mutating func gather(reserving bytes: Int, _ body: (inout ByteBuffer) -> Void) {
        if gathered == nil { gathered = allocator.buffer(capacity: max(bytes, 256)) }
        body(&gathered!)
    }
}
