/// Splits a watch stream (or a list page) into its JSON objects as bytes arrive, in whatever chunks they arrive.
///
/// The API server writes one object per line, but the framing here does not rely on newlines: it follows
/// JSON's own structure (braces outside strings), so pretty-printed streams work too. An object larger
/// than `maximumObjectBytes` is an error (the stream must be dropped): memory stays bounded whatever
/// the server sends.
public struct JSONObjectFramer: Sendable {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// One framed object, with where each object nested in it ends (see `ObjectEnds`).
    public struct Framed: Sendable {
        public let bytes: [UInt8]
        public let objectEnds: ObjectEnds
    }

    public let maximumObjectBytes: Int
    private var buffer: [UInt8] = []
    /// The open containers of the current object (index into `spans` for an object, -1 for an array),
    /// and the nested objects seen so far (offsets from the object's start).
    private var containers: [Int] = []
    private var spans = ObjectEnds()
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
        try feedIndexed(bytes).map(\.bytes)
    }

    /// Feeds bytes, as `feed`, also returning where every nested object of each framed object ends: the
    /// reader then skips an object in one step (the scan here already followed its strings and braces).
    public mutating func feedIndexed<Bytes: Sequence>(_ bytes: Bytes) throws(Failure) -> [Framed] where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var objects: [Framed] = []
        // The scan works on locals over the buffer's storage (one pass, eight bytes at a time inside
        // strings); the state is stored back before returning or throwing. The size limit is checked
        // once per feed: the buffer grows by at most one chunk past it.
        var failure: Failure?
        var wholeBuffer: ObjectEnds?
        buffer.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let raw = UnsafeRawPointer(base)
            let end = buffer.count
            var index = scanned, depth = depth, inString = inString, escaped = escaped, objectStart = objectStart
            var containers = self.containers, spans = self.spans
            (self.containers, self.spans) = ([], ObjectEnds())  // unshared while the locals grow
            defer {
                (self.scanned, self.depth, self.inString, self.escaped, self.objectStart) = (index, depth, inString, escaped, objectStart)
                (self.containers, self.spans) = (containers, spans)
            }
            scanning: while index < end {
                guard let start = objectStart else {
                    let byte = base[index]
                    switch byte {
                    case UInt8(ascii: "{"):
                        objectStart = index
                        depth = 1
                    case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                        break
                    default:
                        failure = Failure(description: "the stream has \(Self.describe(byte)) outside an object")
                        return
                    }
                    index += 1
                    continue
                }
                if inString {
                    // To the closing quote, jumping over escaped characters.
                    while true {
                        if escaped {
                            guard index < end else { break scanning }
                            escaped = false
                            index += 1
                        }
                        while index + 8 <= end, JSONReader.noQuoteOrBackslash(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) { index += 8 }
                        guard index < end else { break scanning }
                        let byte = base[index]
                        index += 1
                        if byte == UInt8(ascii: "\"") { break }
                        if byte == UInt8(ascii: "\\") { escaped = true }
                    }
                    inString = false
                }
                // Structure, to the next string or the object's end.
                while index < end {
                    let byte = base[index]
                    index += 1
                    switch byte {
                    case UInt8(ascii: "\""):
                        inString = true
                        continue scanning
                    case UInt8(ascii: "{"):
                        depth += 1
                        containers.append(spans.count)
                        spans.append(start: index - 1 - start)
                    case UInt8(ascii: "["):
                        depth += 1
                        containers.append(-1)
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            guard index - start <= maximumObjectBytes else { break scanning }
                            if start == 0, index == end {
                                wholeBuffer = spans  // the object is all that is buffered: handed over below, not copied
                            } else {
                                objects.append(Framed(bytes: Array(UnsafeBufferPointer(rebasing: buffer[start..<index])), objectEnds: spans))
                            }
                            objectStart = nil
                            containers.removeAll(keepingCapacity: true)
                            spans = ObjectEnds(capacity: spans.count)
                            continue scanning
                        }
                        if let open = containers.popLast(), open >= 0, byte == UInt8(ascii: "}") {
                            spans.setEnd(open, to: index - start)
                        }
                    default: break
                    }
                }
            }
            if let start = objectStart, index - start > maximumObjectBytes {
                failure = Failure(description: "an object exceeds \(maximumObjectBytes) bytes")
            }
        }
        if let failure { throw failure }
        if let spans = wholeBuffer {
            objects.append(Framed(bytes: buffer, objectEnds: spans))
            buffer = []
            scanned = 0
            return objects
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

    /// Room for `bytes` more (a list page whose length is announced), within the object size limit.
    public mutating func reserveCapacity(_ bytes: Int) {
        buffer.reserveCapacity(buffer.count + Swift.min(bytes, maximumObjectBytes))
    }

    private static func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "\"\(Character(Unicode.Scalar(byte)))\"" : "byte 0x\(String(byte, radix: 16))"
    }
}

/// Where the objects nested in one framed object end, by where they start (byte offsets in it), in
/// the order they start. Made by the framer's scan, which follows strings and escapes: for well-formed
/// JSON these are the objects' true extents. A reader using them must still check what it skips (by
/// digest against bytes it validated before): for malformed input the extents may be anything.
public struct ObjectEnds: Sendable {
    /// (start, end) pairs by start; end -1 while open.
    private var spans: [(start: Int32, end: Int32)] = []

    public init() {}

    init(capacity: Int) {
        spans.reserveCapacity(capacity)
    }

    var count: Int { spans.count }

    mutating func append(start: Int) {
        spans.append((Int32(truncatingIfNeeded: start), -1))
    }

    mutating func setEnd(_ index: Int, to end: Int) {
        spans[index].end = Int32(truncatingIfNeeded: end)
    }

    /// The offset just past the object that starts at `start`, if one does and it was closed.
    public func end(ofObjectAt start: Int) -> Int? {
        var low = 0, high = spans.count
        let target = Int32(truncatingIfNeeded: start)
        while low < high {
            let middle = (low + high) / 2
            if spans[middle].start < target { low = middle + 1 } else { high = middle }
        }
        guard low < spans.count, spans[low].start == target, spans[low].end > target else { return nil }
        return Int(spans[low].end)
    }
}
