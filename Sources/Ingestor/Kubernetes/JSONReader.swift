#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A pull parser over JSON bytes, for the objects the ingestor reads on its hot path (watch events and
/// list pages of EndpointSlices and Services).
///
/// Foundation's `JSONDecoder` builds a tree of every value (the `uid`s, `managedFields` and timestamps
/// the ingestor never reads) and then walks it through `Codable`'s containers; that was most of an
/// ingestor's CPU. This reader goes over the bytes once: the caller asks for the value it expects next,
/// and whatever it does not want is skipped without being built. It is strict where `JSONDecoder` is:
/// RFC 8259 grammar, valid UTF-8 and no raw control characters in any string (also those it skips), a
/// type mismatch is an error, nothing after the value. Nesting
/// is limited (`maximumDepth`) and skipping is iterative, so hostile input cannot exhaust the stack.
///
/// Used only inside `JSONReader.parse`, which lends it the bytes.
public struct JSONReader {
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// The most nested arrays and objects accepted (Kubernetes objects need about 10).
    public static let maximumDepth = 128

    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    var depth = 0
    /// What earlier documents of the same stream were read as, for readers that can reuse it.
    public let memo: ReadMemo?
    /// Where the input's nested objects end, when its framer noted it (`skipObjectUnvalidated` uses it).
    let objectEnds: ObjectEnds?

    private init(_ bytes: UnsafeBufferPointer<UInt8>, memo: ReadMemo?, objectEnds: ObjectEnds?) {
        self.bytes = bytes
        self.memo = memo
        self.objectEnds = objectEnds
    }

    /// Parses one JSON document: `body` reads its value; only white space may follow.
    public static func parse<Bytes: Collection, Result>(
        _ input: Bytes, memo: ReadMemo? = nil, objectEnds: ObjectEnds? = nil, _ body: (inout JSONReader) throws(Failure) -> Result
    ) throws(Failure) -> Result where Bytes.Element == UInt8 {
        let attempt = input.withContiguousStorageIfAvailable { buffer in
            Swift.Result { () throws(Failure) -> Result in try parse(buffer, memo, objectEnds, body) }
        }
        if let attempt { return try attempt.get() }
        let copy = Array(input)
        return try copy.withUnsafeBufferPointer { buffer in
            Swift.Result { () throws(Failure) -> Result in try parse(buffer, memo, objectEnds, body) }
        }.get()
    }

    private static func parse<Result>(
        _ buffer: UnsafeBufferPointer<UInt8>, _ memo: ReadMemo?, _ objectEnds: ObjectEnds?,
        _ body: (inout JSONReader) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        var reader = JSONReader(buffer, memo: memo, objectEnds: objectEnds)
        let value = try body(&reader)
        reader.skipWhitespace()
        guard reader.position == buffer.count else { throw reader.failure("unexpected \(reader.describeNext()) after the value") }
        return value
    }

    // MARK: Structure

    /// Reads an object, calling `member` with each key; `member` must read or skip the key's value.
    public mutating func readObject(_ member: (inout JSONReader, Key) throws(Failure) -> Void) throws(Failure) {
        try readContainer(open: UInt8(ascii: "{"), close: UInt8(ascii: "}"), what: "object") { (reader: inout JSONReader) throws(Failure) in
            reader.skipWhitespace()
            guard reader.peekByte() == UInt8(ascii: "\"") else {
                throw reader.failure("expected a member name, found \(reader.describeNext())")
            }
            let key = try reader.readKey()
            try reader.expect(UInt8(ascii: ":"), "':'")
            try member(&reader, key)
        }
    }

    /// Reads an object whose members of interest are `names` (at most 64): `member` is called with the
    /// index in `names` of each one present, and must read its value. A member present twice is an
    /// error (`null` the first time included); members not named are skipped.
    public mutating func readMembers(_ names: [StaticString], _ member: (inout JSONReader, Int) throws(Failure) -> Void) throws(Failure) {
        var seen = SeenKeys()
        try readObject { (reader: inout JSONReader, key: Key) throws(Failure) in
            guard let index = names.firstIndex(where: { key == $0 }) else { return try reader.skipValue() }
            guard seen.first(index) else { throw reader.duplicate(key) }
            try member(&reader, index)
        }
    }

    /// `readMembers`, or `null` (returning false).
    public mutating func readMembersOrNull(_ names: [StaticString], _ member: (inout JSONReader, Int) throws(Failure) -> Void)
        throws(Failure) -> Bool
    {
        if readNull() { return false }
        try readMembers(names, member)
        return true
    }

    /// The loop objects and arrays share: `open`, elements separated by commas, `close`.
    private mutating func readContainer(
        open: UInt8, close: UInt8, what: String, _ element: (inout JSONReader) throws(Failure) -> Void
    ) throws(Failure) {
        try expect(open, "an \(what)")
        try enter()
        skipWhitespace()
        if peekByte() == close {
            position += 1
            depth -= 1
            return
        }
        while true {
            try element(&self)
            skipWhitespace()
            guard let next = peekByte() else { throw failure("\(what) not closed") }
            position += 1
            if next == close { break }
            guard next == UInt8(ascii: ",") else {
                throw failure("expected ',' or '\(Character(Unicode.Scalar(close)))', found \(Self.describe(next))", at: position - 1)
            }
        }
        depth -= 1
    }

    /// Reads an object, or `null` (returning false).
    public mutating func readObjectOrNull(_ member: (inout JSONReader, Key) throws(Failure) -> Void) throws(Failure) -> Bool {
        if readNull() { return false }
        try readObject(member)
        return true
    }

    /// Reads an array, calling `element` once per element; `element` must read or skip it.
    public mutating func readArray(_ element: (inout JSONReader) throws(Failure) -> Void) throws(Failure) {
        try readContainer(open: UInt8(ascii: "["), close: UInt8(ascii: "]"), what: "array", element)
    }

    /// Reads an array of elements read by `element`, or `null` (nil).
    public mutating func readArrayOrNull<Element>(_ element: (inout JSONReader) throws(Failure) -> Element) throws(Failure) -> [Element]? {
        if readNull() { return nil }
        var result: [Element] = []
        try readArray { (reader: inout JSONReader) throws(Failure) in result.append(try element(&reader)) }
        return result
    }

    /// Reads an object of string values (labels, annotations), or `null` (nil).
    public mutating func readStringMapOrNull() throws(Failure) -> [String: String]? {
        if readNull() { return nil }
        var result: [String: String] = [:]
        try readObject { (reader: inout JSONReader, key: Key) throws(Failure) in
            let name = key.string
            guard result[name] == nil else { throw reader.duplicate(key) }
            result[name] = try reader.readString()
        }
        return result
    }

    // MARK: Scalars

    /// Consumes `null` if it comes next.
    public mutating func readNull() -> Bool {
        skipWhitespace()
        guard matchLiteral("null") else { return false }
        return true
    }

    public mutating func readString() throws(Failure) -> String {
        skipWhitespace()
        guard peekByte() == UInt8(ascii: "\"") else { throw failure("expected a string, found \(describeNext())") }
        return try readStringBody()
    }

    public mutating func readStringOrNull() throws(Failure) -> String? {
        readNull() ? nil : try readString()
    }

    public mutating func readBool() throws(Failure) -> Bool {
        skipWhitespace()
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw failure("expected true or false, found \(describeNext())")
    }

    public mutating func readBoolOrNull() throws(Failure) -> Bool? {
        readNull() ? nil : try readBool()
    }

    /// Reads an integer that fits in 53 bits, as JSON numbers safely do. `80.0` or `8e1` is 80 (as for
    /// `JSONDecoder`); `80.5` is an error.
    public mutating func readInt() throws(Failure) -> Int {
        skipWhitespace()
        let start = position
        let (integer, fractionOrExponent) = try scanNumber()
        var value = integer
        if fractionOrExponent {
            value = Double(String(decoding: bytes[start..<position], as: UTF8.self)).flatMap { Int(exactly: $0) }
        }
        guard let value, abs(value) <= (1 << 53) else {
            throw failure("expected an integer, found \(String(decoding: bytes[start..<position].prefix(40), as: UTF8.self))", at: start)
        }
        return value
    }

    public mutating func readIntOrNull() throws(Failure) -> Int? {
        readNull() ? nil : try readInt()
    }

    /// Skips one value of any kind, validating it. Iterative: depth costs no stack. The open containers
    /// are a bit stack (1 = object), as deep as `maximumDepth` allows.
    public mutating func skipValue() throws(Failure) {
        var open = ContainerStack()
        repeat {
            skipWhitespace()
            guard let byte = peekByte() else { throw failure("value expected, found the end") }
            switch byte {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                position += 1
                guard open.count + depth < Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth)") }
                let isObject = byte == UInt8(ascii: "{")
                open.push(isObject: isObject)
                skipWhitespace()
                if peekByte() == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    position += 1
                    open.pop()
                } else if isObject {
                    try skipMemberName()
                    continue
                } else {
                    continue
                }
            case UInt8(ascii: "\""): try skipStringBody()
            case UInt8(ascii: "t"): guard matchLiteral("true") else { throw failure("invalid literal") }
            case UInt8(ascii: "f"): guard matchLiteral("false") else { throw failure("invalid literal") }
            case UInt8(ascii: "n"): guard matchLiteral("null") else { throw failure("invalid literal") }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try scanNumber()
            default: throw failure("unexpected \(Self.describe(byte))")
            }
            // After a complete value: close containers or move to the next element.
            while open.count > 0 {
                let inObject = open.topIsObject
                skipWhitespace()
                guard let next = peekByte() else { throw failure("\(inObject ? "object" : "array") not closed") }
                position += 1
                if next == UInt8(ascii: ",") {
                    if inObject { try skipMemberName() }
                    break
                }
                guard next == (inObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
                    throw failure("unexpected \(Self.describe(next))", at: position - 1)
                }
                open.pop()
            }
        } while open.count > 0
    }

    /// Moves past an object without validating it: only strings (with their escapes) and nesting are
    /// followed, as the framer does, several times faster than `skipValue` (in one step with the
    /// framer's index). For a reader that finds items first and reads each in full afterwards (a list
    /// page's items, on every core): what it skips here must still be read properly. - Returns: false
    /// (position unspecified) when no object starts here or it does not end within the input.
    public mutating func skipObjectUnvalidated() -> Bool {
        skipWhitespace()
        guard let base = bytes.baseAddress, position < bytes.count, base[position] == UInt8(ascii: "{") else { return false }
        if let end = objectEnds?.end(ofObjectAt: position), end <= bytes.count {
            position = end
            return true
        }
        let raw = UnsafeRawPointer(base)
        let end = bytes.count
        var index = position + 1
        var nesting = 1
        while index < end {
            let byte = base[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                while true {
                    while index + 8 <= end, Self.noQuoteOrBackslash(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                        index += 8
                    }
                    guard index < end else { return false }
                    let inner = base[index]
                    index += 1
                    if inner == UInt8(ascii: "\"") { break }
                    if inner == UInt8(ascii: "\\") { index += 1 }
                }
            case UInt8(ascii: "{"), UInt8(ascii: "["): nesting += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                nesting -= 1
                if nesting == 0 {
                    position = index
                    return true
                }
            default: break
            }
        }
        return false
    }

    /// Which containers `skipValue` is inside, innermost last: two words of bits, no allocation.
    private struct ContainerStack {
        private var low: UInt64 = 0, high: UInt64 = 0
        private(set) var count = 0

        var topIsObject: Bool {
            let index = count - 1
            return (index < 64 ? low >> UInt64(index) : high >> UInt64(index - 64)) & 1 == 1
        }

        mutating func push(isObject: Bool) {
            precondition(count < 128)
            let bit: UInt64 = isObject ? 1 : 0
            if count < 64 {
                low = low & ~(1 << UInt64(count)) | bit << UInt64(count)
            } else {
                high = high & ~(1 << UInt64(count - 64)) | bit << UInt64(count - 64)
            }
            count += 1
        }

        mutating func pop() { count -= 1 }
    }

    // MARK: Keys

    /// A member name, borrowed from the input (or decoded, when it has escapes).
    public struct Key {
        fileprivate var raw: UnsafeBufferPointer<UInt8>
        fileprivate var decoded: String?

        public var string: String { decoded ?? String(decoding: raw, as: UTF8.self) }

        public static func == (key: Key, name: StaticString) -> Bool {
            if let decoded = key.decoded { return decoded == name.description }
            guard key.raw.count == name.utf8CodeUnitCount else { return false }
            guard let base = key.raw.baseAddress else { return name.utf8CodeUnitCount == 0 }
            return memcmp(base, name.utf8Start, key.raw.count) == 0
        }
    }

    /// Which of an object's members (numbered by the caller) were read: a member read twice is an error,
    /// `null` the first time included.
    public struct SeenKeys {
        private var bits: UInt64 = 0
        public init() {}
        /// True the first time `index` is seen.
        public mutating func first(_ index: Int) -> Bool {
            let bit: UInt64 = 1 << UInt64(index)
            defer { bits |= bit }
            return bits & bit == 0
        }
    }

    private mutating func readKey() throws(Failure) -> Key {
        position += 1  // the opening quote
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(rebasing: bytes[start..<position])
                position += 1
                guard Self.isUTF8(raw) else { throw failure("member name is not UTF-8", at: start) }
                return Key(raw: raw, decoded: nil)
            }
            if byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            position += 1
        }
        position = start - 1
        let decoded = try readStringBody()
        return Key(raw: UnsafeBufferPointer(start: nil, count: 0), decoded: decoded)
    }

    private mutating func skipMemberName() throws(Failure) {
        skipWhitespace()
        guard peekByte() == UInt8(ascii: "\"") else { throw failure("expected a member name, found \(describeNext())") }
        try skipStringBody()
        skipWhitespace()
        try expect(UInt8(ascii: ":"), "':'")
    }

    // MARK: Spans

    /// How far the reader has read, in bytes.
    public var offset: Int { position }

    /// Goes back to an earlier `offset` (to read a value that was skipped).
    public mutating func rewind(to offset: Int) {
        precondition(offset <= position, "rewind only goes back")
        position = offset
    }

    // MARK: Errors

    /// A member the caller reads appeared twice in one object (the API server never sends that; which
    /// one would win differs between parsers, so neither does).
    public func duplicate(_ key: Key) -> Failure {
        Failure(message: "member \(key.string.prefix(80)) appears twice", offset: position)
    }

    public func failure(_ message: String) -> Failure {
        Failure(message: message, offset: position)
    }

    func failure(_ message: String, at offset: Int) -> Failure {
        Failure(message: message, offset: offset)
    }

    func describeNext() -> String {
        peekByte().map(Self.describe) ?? "the end"
    }

    static func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16))"
    }
}
