/// Splits a watch stream into its JSON objects as bytes arrive, in whatever chunks they arrive.
///
/// The API server writes one object per line, but the framing here does not rely on newlines: it follows
/// JSON's own structure (braces outside strings), so pretty-printed streams work too. An object larger
/// than `maximumObjectBytes` is an error (the stream must be dropped): memory stays bounded whatever
/// the server sends.
public struct JSONObjectFramer: Sendable {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public let maximumObjectBytes: Int
    private var buffer: [UInt8] = []
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var objectStart: Int?
    private var scanned = 0

    public init(maximumObjectBytes: Int = 16 << 20) {
        self.maximumObjectBytes = maximumObjectBytes
    }

    /// Feeds bytes. - Returns: every object completed by them, in order.
    /// - Throws: `Failure` for bytes outside an object that are not white space, a stray `}`, or an
    ///   object over the size limit. After a failure the framer must not be used again.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws(Failure) -> [[UInt8]] where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var objects: [[UInt8]] = []
        while scanned < buffer.count {
            let byte = buffer[scanned]
            if objectStart == nil {
                switch byte {
                case UInt8(ascii: "{"):
                    objectStart = scanned
                    depth = 1
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    break
                default:
                    throw Failure(description: "watch stream has \(Self.describe(byte)) outside an object")
                }
            } else if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else {
                switch byte {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0, let start = objectStart {
                        objects.append(Array(buffer[start...scanned]))
                        objectStart = nil
                    }
                default: break
                }
            }
            scanned += 1
            if let start = objectStart, scanned - start > maximumObjectBytes {
                throw Failure(description: "a watch event exceeds \(maximumObjectBytes) bytes")
            }
        }
        // Drop what is consumed: everything before the current object (or everything).
        let keepFrom = objectStart ?? buffer.count
        if keepFrom > 0 {
            buffer.removeFirst(keepFrom)
            scanned -= keepFrom
            if objectStart != nil { objectStart = 0 }
        }
        return objects
    }

    /// Bytes of an unfinished object still buffered (0 between objects).
    public var pendingBytes: Int { buffer.count }

    private static func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "\"\(Character(Unicode.Scalar(byte)))\"" : "byte 0x\(String(byte, radix: 16))"
    }
}
