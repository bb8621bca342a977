import NIOCore
import NIOHPACK

/// The parts of HTTP/2 (RFC 9113) the xDS listener speaks: frame headers, the frames it reads and
/// writes, settings and error codes. Header blocks are decoded by NIOHPACK; the few headers a gRPC
/// server sends are encoded here, as literals that never touch a dynamic table.
enum HTTP2Wire {
    /// What a client sends first.
    static let clientPreface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let frameHeaderBytes = 9
    /// SETTINGS_MAX_FRAME_SIZE's initial value: the largest frame either side may send until told more.
    static let defaultMaximumFrameBytes = 16_384
    static let defaultWindow = 65_535
    static let maximumWindow = Int(Int32.max)

    enum FrameType: UInt8 {
        case data = 0
        case headers = 1
        case priority = 2
        case rstStream = 3
        case settings = 4
        case pushPromise = 5
        case ping = 6
        case goAway = 7
        case windowUpdate = 8
        case continuation = 9
    }

    enum Flag {
        static let endStream: UInt8 = 0x1
        static let ack: UInt8 = 0x1
        static let endHeaders: UInt8 = 0x4
        static let padded: UInt8 = 0x8
        static let priority: UInt8 = 0x20
    }

    enum Setting: UInt16 {
        case headerTableSize = 1
        case enablePush = 2
        case maximumConcurrentStreams = 3
        case initialWindowSize = 4
        case maximumFrameSize = 5
        case maximumHeaderListSize = 6
    }

    enum ErrorCode: UInt32 {
        case noError = 0
        case protocolError = 1
        case flowControlError = 3
        case streamClosed = 5
        case frameSizeError = 6
        case refusedStream = 7
        case compressionError = 9
        case enhanceYourCalm = 11

        /// As metrics and logs name it.
        var name: String {
            switch self {
            case .noError: "no_error"
            case .protocolError: "protocol_error"
            case .flowControlError: "flow_control_error"
            case .streamClosed: "stream_closed"
            case .frameSizeError: "frame_size_error"
            case .refusedStream: "refused_stream"
            case .compressionError: "compression_error"
            case .enhanceYourCalm: "enhance_your_calm"
            }
        }
    }

    /// What ends a connection: a GOAWAY with `code`, and `reason` as its debug data and in the log.
    struct ConnectionError: Error {
        var code: ErrorCode
        var reason: String
        /// The reason `legation_xds_connections_closed_total` counts it under: the code's name unless
        /// a more telling one is given.
        var metric: String

        init(_ code: ErrorCode, _ reason: String, metric: String? = nil) {
            self.code = code
            self.reason = reason
            self.metric = metric ?? code.name
        }
    }

    /// A frame's nine-byte header.
    struct FrameHeader: Equatable {
        var length: Int
        var type: UInt8
        var flags: UInt8
        var streamID: UInt32

        func has(_ flag: UInt8) -> Bool { flags & flag != 0 }

        /// Reads a header if nine bytes are there, without moving the reader index.
        static func peek(_ buffer: ByteBuffer) -> FrameHeader? {
            guard
                let (high, low, type, flags, stream) = buffer.getMultipleIntegers(
                    at: buffer.readerIndex, as: (UInt8, UInt16, UInt8, UInt8, UInt32).self)
            else { return nil }
            return FrameHeader(length: Int(high) << 16 | Int(low), type: type, flags: flags, streamID: stream & 0x7fff_ffff)
        }

        func write(to buffer: inout ByteBuffer) {
            buffer.writeMultipleIntegers(UInt8(truncatingIfNeeded: length >> 16), UInt16(truncatingIfNeeded: length), type, flags, streamID)
        }
    }

    /// A SETTINGS frame's values (not an acknowledgement), checked against RFC 9113 §6.5.2; settings
    /// this side does not know are left out.
    static func settings(_ header: FrameHeader, _ payload: ByteBuffer) throws(ConnectionError) -> [(Setting, Int)] {
        guard header.length % 6 == 0 else { throw .init(.frameSizeError, "SETTINGS of \(header.length) bytes") }
        var payload = payload
        var settings: [(Setting, Int)] = []
        while let (identifier, value) = payload.readMultipleIntegers(as: (UInt16, UInt32).self) {
            guard let setting = Setting(rawValue: identifier) else { continue }
            switch setting {
            case .initialWindowSize where value > maximumWindow:
                throw .init(.flowControlError, "SETTINGS_INITIAL_WINDOW_SIZE \(value) is above 2^31-1")
            case .maximumFrameSize where value < defaultMaximumFrameBytes || value > 16_777_215:
                throw .init(.protocolError, "SETTINGS_MAX_FRAME_SIZE \(value) is out of range")
            case .enablePush where value > 1:
                throw .init(.protocolError, "SETTINGS_ENABLE_PUSH \(value)")
            default:
                settings.append((setting, Int(value)))
            }
        }
        return settings
    }

    /// What to answer bytes that are not HTTP/2 but an HTTP/1 request (someone's curl, or `legation
    /// status` given this port): a status that says what the port is. nil for anything else.
    static func http1Answer(to prefix: [UInt8]) -> String? {
        let methods = ["GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC"]
        guard prefix.count >= 4, methods.contains(String(decoding: prefix.prefix(4), as: UTF8.self)) else { return nil }
        let text = "This is an xDS (gRPC over HTTP/2) port. The xds-server's HTTP endpoints are on its debug address.\n"
        return
            "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: \(text.utf8.count)\r\n\r\n\(text)"
    }

    // MARK: Header blocks

    /// A header block for `headers`, as literals without indexing (RFC 7541 §6.2.2), so the peer's
    /// decoder state never depends on this side's. `:status: 200` is the static table's entry 8;
    /// `:status` and `content-type` take their names from the static table.
    static func headerBlock(_ headers: HPACKHeaders, into buffer: inout ByteBuffer) {
        for (name, value, _) in headers {
            switch name {
            case ":status" where value == "200":
                buffer.writeInteger(UInt8(0x88))
            case ":status":
                writeInteger(8, prefixBits: 4, into: &buffer)
                writeString(value, into: &buffer)
            case "content-type":
                writeInteger(31, prefixBits: 4, into: &buffer)
                writeString(value, into: &buffer)
            default:
                buffer.writeInteger(UInt8(0))
                writeString(name, into: &buffer)
                writeString(value, into: &buffer)
            }
        }
    }

    /// RFC 7541 §5.1, with the first byte's other bits zero.
    static func writeInteger(_ value: Int, prefixBits: Int, into buffer: inout ByteBuffer) {
        let limit = (1 << prefixBits) - 1
        guard value >= limit else {
            buffer.writeInteger(UInt8(value))
            return
        }
        buffer.writeInteger(UInt8(limit))
        var rest = value - limit
        while rest >= 128 {
            buffer.writeInteger(UInt8(rest & 0x7f | 0x80))
            rest >>= 7
        }
        buffer.writeInteger(UInt8(rest))
    }

    /// RFC 7541 §5.2, without Huffman coding.
    static func writeString(_ text: String, into buffer: inout ByteBuffer) {
        writeInteger(text.utf8.count, prefixBits: 7, into: &buffer)
        buffer.writeString(text)
    }
}
