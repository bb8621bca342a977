import NIOCore
import NIOHPACK

/// The parts of gRPC over HTTP/2 ("PROTOCOL-HTTP2.md" in grpc/grpc) the xDS transport speaks: status
/// codes, headers and trailers, and length-prefixed messages.
enum GRPCWire {
    /// gRPC status codes used here (grpc/grpc "doc/statuscodes.md").
    enum Status: Int, Sendable {
        case ok = 0
        case invalidArgument = 3
        case permissionDenied = 7
        case resourceExhausted = 8
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14

        init(_ code: XDSError.Code) {
            switch code {
            case .invalidArgument: self = .invalidArgument
            case .resourceExhausted: self = .resourceExhausted
            case .unavailable: self = .unavailable
            case .permissionDenied: self = .permissionDenied
            }
        }
    }

    static let contentType = "application/grpc"

    /// The response headers of a stream that will carry messages.
    static func responseHeaders() -> HPACKHeaders {
        [":status": "200", "content-type": contentType]
    }

    /// The trailers that end a stream; with `only`, a "Trailers-Only" response (no headers were sent).
    static func trailers(_ status: Status, _ message: String?, only: Bool = false) -> HPACKHeaders {
        var headers: HPACKHeaders = only ? [":status": "200", "content-type": contentType] : [:]
        headers.add(name: "grpc-status", value: String(status.rawValue))
        if let message, !message.isEmpty { headers.add(name: "grpc-message", value: percentEncoded(message)) }
        return headers
    }

    /// `grpc-message` is percent-encoded UTF-8: bytes outside printable ASCII, and `%`, become `%XX`.
    static func percentEncoded(_ message: String) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(message.utf8.count)
        for byte in message.utf8.prefix(8 * 1024) {
            if byte >= 0x20 && byte <= 0x7e && byte != UInt8(ascii: "%") {
                bytes.append(byte)
            } else {
                bytes += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0xf)]]
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Why a request stream's bytes cannot be read.
    struct FramingError: Error, Equatable {
        var status: Status
        var message: String
    }

    /// Splits a request stream's DATA into messages: a flag byte, a 4-byte big-endian length, then
    /// the message. Holds only the bytes of one unfinished message; refuses one above `maximumBytes`
    /// as soon as its length is read.
    struct Deframer {
        let maximumBytes: Int
        private var buffered: ByteBuffer?

        init(maximumBytes: Int) {
            self.maximumBytes = maximumBytes
        }

        mutating func append(_ bytes: ByteBuffer) {
            buffered.append(bytes)
        }

        /// The next whole message, nil until one has arrived.
        mutating func next() throws(FramingError) -> ByteBuffer? {
            guard var buffer = buffered, buffer.readableBytes >= 5,
                let (flag, length) = buffer.getMultipleIntegers(at: buffer.readerIndex, as: (UInt8, UInt32).self)
            else { return nil }
            guard flag == 0 else {
                throw FramingError(
                    status: .internal,
                    message: "a compressed message arrived, but this server accepts only uncompressed ones (grpc-encoding identity)")
            }
            guard Int(length) <= maximumBytes else {
                throw FramingError(
                    status: .resourceExhausted,
                    message: "the request message is \(length) bytes, above this server's maximum of \(maximumBytes) (grpc.maxRequestBytes)"
                )
            }
            guard buffer.readableBytes >= 5 + Int(length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 5)
            let message = buffer.readSlice(length: Int(length))
            buffered = buffer.readableBytes == 0 ? nil : buffer
            return message
        }

        /// Bytes of an unfinished message (the client ended its stream mid-message if this is not 0).
        var pendingBytes: Int { buffered?.readableBytes ?? 0 }
    }
}

extension ByteBuffer? {
    /// Appends `bytes` to what is buffered: with nothing buffered, `bytes` become the buffer (no copy).
    mutating func append(_ bytes: ByteBuffer) {
        guard var buffer = self, buffer.readableBytes > 0 else {
            self = bytes
            return
        }
        self = nil  // so that writing into it copies nothing
        var bytes = bytes
        buffer.writeBuffer(&bytes)
        self = buffer
    }
}
