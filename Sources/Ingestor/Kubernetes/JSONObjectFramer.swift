/// Splits a watch stream (or a list page) into its JSON objects as bytes arrive, in whatever chunks they arrive.
///
/// The API server writes one object per line, but the framing here does not rely on newlines: it follows
/// JSON's own structure (braces outside strings), so pretty-printed streams work too. An object larger
/// than `maximumObjectBytes` is an error (the stream must be dropped): memory stays bounded whatever
/// the server sends.
///
/// The scan classifies eight bytes at a time (quotes, brackets, backslashes as bit masks of a word,
/// strings as the running parity of their quotes) and looks at single bytes only around a backslash
/// and where an object may end, so a 25 KB event costs a few microseconds. With `indexing` it also notes
/// where each nested object ends (`ObjectEnds`), for readers that skip objects in one step (list pages).
public struct JSONObjectFramer: Sendable {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// One framed object, with where each object nested in it ends (empty unless the framer indexes).
    public struct Framed: Sendable {
        public let bytes: [UInt8]
        public let objectEnds: ObjectEnds
    }

    public let maximumObjectBytes: Int
    /// Whether `Framed.objectEnds` is filled in.
    public let indexing: Bool
    private var buffer: [UInt8] = []
    /// The open containers of the current object (index into `spans` for an object, -1 for an array),
    /// and the nested objects seen so far (offsets from the object's start). Indexing only.
    private var containers: [Int] = []
    private var spans = ObjectEnds()
    private var state = ScanState()
    private var objectStart: Int?
    private var scanned = 0

    /// Where the scan stands between feeds.
    private struct ScanState {
        var depth = 0
        var inString = false
        /// The previous byte was a backslash inside a string.
        var escaped = false
    }

    public init(maximumObjectBytes: Int = 16 << 20, indexing: Bool = false) {
        self.maximumObjectBytes = maximumObjectBytes
        self.indexing = indexing
    }

    /// Feeds bytes. - Returns: every object completed by them, in order.
    /// - Throws: `Failure` for bytes outside an object that are not white space, a stray `}`, or an
    ///   object over the size limit. After a failure the framer must not be used again.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws(Failure) -> [[UInt8]] where Bytes.Element == UInt8 {
        try feedIndexed(bytes).map(\.bytes)
    }

    /// Feeds bytes, as `feed`, returning each object with its index of nested objects (when indexing).
    public mutating func feedIndexed<Bytes: Sequence>(_ bytes: Bytes) throws(Failure) -> [Framed] where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var objects: [Framed] = []
        // The scan works on locals over the buffer's storage; the state is stored back before returning
        // or throwing. The size limit is checked once per feed: the buffer grows by at most one chunk past it.
        var failure: Failure?
        var wholeBuffer: ObjectEnds?
        buffer.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            let end = buffer.count
            var index = scanned
            var state = state
            var objectStart = objectStart
            var containers = self.containers
            var spans = self.spans
            (self.containers, self.spans) = ([], ObjectEnds())  // unshared while the locals grow
            defer {
                (self.scanned, self.state, self.objectStart) = (index, state, objectStart)
                (self.containers, self.spans) = (containers, spans)
            }
            while index < end {
                guard let start = objectStart else {
                    let byte = base[index]
                    switch byte {
                    case UInt8(ascii: "{"):
                        objectStart = index
                        state = ScanState(depth: 1)
                    case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                        break
                    default:
                        failure = Failure(description: "the stream has \(Self.describe(byte)) outside an object")
                        return
                    }
                    index += 1
                    continue
                }
                // Inside an object: to its end, or to the end of what is buffered.
                let closed =
                    indexing
                    ? Self.scan(base, from: &index, to: end, start: start, state: &state) { kind, at in
                        Self.note(kind, at: at, start: start, containers: &containers, spans: &spans)
                    }
                    : Self.scan(base, from: &index, to: end, start: start, state: &state) { _, _ in }
                guard closed else { break }
                guard index - start <= maximumObjectBytes else { break }
                if start == 0, index == end {
                    wholeBuffer = spans  // the object is all that is buffered: handed over below, not copied
                } else {
                    objects.append(Framed(bytes: Array(UnsafeBufferPointer(rebasing: buffer[start..<index])), objectEnds: spans))
                }
                objectStart = nil
                containers.removeAll(keepingCapacity: true)
                spans = ObjectEnds(capacity: spans.count)
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

    // MARK: The scan

    /// A bracket outside strings.
    private enum Bracket { case openObject, openArray, closeObject, closeArray }

    /// Scans from `index` (inside an object opened at `start`) until the object closes (true, `index`
    /// just past it) or the input ends (false). `bracket` hears of every bracket outside strings but the
    /// object's own opening one, in order.
    @inline(__always)
    private static func scan(
        _ base: UnsafePointer<UInt8>, from index: inout Int, to end: Int, start: Int, state: inout ScanState,
        _ bracket: (Bracket, Int) -> Void
    ) -> Bool {
        let raw = UnsafeRawPointer(base)
        while index < end {
            // Eight bytes at a time, unless a backslash is near (or the previous byte was one).
            if !state.escaped, index + 8 <= end {
                let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                if Self.bytes(equalTo: 0x5C, in: word) == 0 {
                    let quotes = Self.mask(Self.bytes(equalTo: 0x22, in: word))
                    // Bit i set: byte i is inside a string (an opening quote counts as inside, a closing one not).
                    var inside = Self.prefixParity(quotes)
                    if state.inString { inside = ~inside & 0xFF }
                    let folded = word | 0x2020_2020_2020_2020  // `[` → `{`, `]` → `}`
                    let opening = Self.mask(Self.bytes(equalTo: 0x7B, in: folded)) & ~inside
                    let closing = Self.mask(Self.bytes(equalTo: 0x7D, in: folded)) & ~inside
                    let brackets = opening | closing
                    if brackets == 0 {
                        state.inString = inside & 0x80 != 0  // after byte 7: inside, or just closed
                        index += 8
                        continue
                    }
                    // Brackets in order; the object may close at one of them.
                    var pending = brackets
                    while pending != 0 {
                        let bit = pending.trailingZeroBitCount
                        pending &= pending - 1
                        let at = index + bit
                        let byte = base[at]
                        if opening >> bit & 1 == 1 {
                            state.depth += 1
                            bracket(byte == UInt8(ascii: "{") ? .openObject : .openArray, at)
                        } else {
                            state.depth -= 1
                            if state.depth == 0 {
                                state.inString = false
                                index = at + 1
                                return true
                            }
                            bracket(byte == UInt8(ascii: "}") ? .closeObject : .closeArray, at)
                        }
                    }
                    state.inString = inside & 0x80 != 0
                    index += 8
                    continue
                }
            }
            // One byte: a backslash is in this word, or the input ends within it.
            let byte = base[index]
            index += 1
            if state.inString {
                if state.escaped {
                    state.escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    state.escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    state.inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): state.inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                state.depth += 1
                bracket(byte == UInt8(ascii: "{") ? .openObject : .openArray, index - 1)
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                state.depth -= 1
                if state.depth == 0 { return true }
                bracket(byte == UInt8(ascii: "}") ? .closeObject : .closeArray, index - 1)
            default: break
            }
        }
        return false
    }

    /// High bit of each byte of `word` that equals `value` (exact: no borrow crosses bytes).
    @inline(__always)
    static func bytes(equalTo value: UInt8, in word: UInt64) -> UInt64 {
        let x = word ^ (0x0101_0101_0101_0101 &* UInt64(value))
        let low = (x & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F
        return ~(low | x | 0x7F7F_7F7F_7F7F_7F7F)
    }

    /// The high bits of a word's bytes as eight bits, byte 0 (the first in memory) lowest.
    @inline(__always)
    static func mask(_ highBits: UInt64) -> UInt64 {
        ((highBits >> 7) &* 0x0102_0408_1020_4080) >> 56
    }

    /// Bit i: the parity of bits 0...i of `quotes` (set inside a string opened in this word, from its
    /// opening quote up to, not including, its closing one).
    @inline(__always)
    static func prefixParity(_ quotes: UInt64) -> UInt64 {
        var x = quotes
        x ^= x << 1
        x ^= x << 2
        x ^= x << 4
        return x & 0xFF
    }

    /// Records a bracket in the index of nested objects.
    @inline(__always)
    private static func note(_ kind: Bracket, at: Int, start: Int, containers: inout [Int], spans: inout ObjectEnds) {
        switch kind {
        case .openObject:
            containers.append(spans.count)
            spans.append(start: at - start)
        case .openArray:
            containers.append(-1)
        case .closeObject, .closeArray:
            if let open = containers.popLast(), open >= 0, kind == .closeObject {
                spans.setEnd(open, to: at + 1 - start)
            }
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "\"\(Character(Unicode.Scalar(byte)))\"" : "byte 0x\(String(byte, radix: 16))"
    }
}
