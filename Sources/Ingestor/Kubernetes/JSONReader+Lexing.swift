/// `JSONReader`'s lexing: white space, literals, strings (escapes, UTF-8), numbers.
extension JSONReader {

    mutating func enter() throws(Failure) {
        depth += 1
        guard depth <= Self.maximumDepth else { throw failure("nested deeper than \(Self.maximumDepth)") }
    }

    mutating func expect(_ byte: UInt8, _ what: String) throws(Failure) {
        skipWhitespace()
        guard peekByte() == byte else { throw failure("expected \(what), found \(describeNext())") }
        position += 1
    }

    mutating func skipWhitespace() {
        guard let base = bytes.baseAddress else { return }
        var index = position
        let end = bytes.count
        while index < end {
            let byte = base[index]
            guard byte <= 0x20, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { break }
            index += 1
        }
        position = index
    }

    func peekByte() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    mutating func matchLiteral(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - position >= count else { return false }
        for index in 0..<count where bytes[position + index] != literal.utf8Start[index] { return false }
        position += count
        return true
    }

    /// At an opening quote: the string's value.
    mutating func readStringBody() throws(Failure) -> String {
        let quote = position
        position += 1
        let start = position
        // Fast path: no escapes; eight plain bytes at a time.
        if let base = bytes.baseAddress {
            let raw = UnsafeRawPointer(base)
            while position + 8 <= bytes.count, Self.plainStringBytes(raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)) {
                position += 8
            }
        }
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                guard let value = Self.string(UnsafeBufferPointer(rebasing: bytes[start..<position])) else {
                    throw failure("string is not UTF-8", at: start)
                }
                position += 1
                return value
            }
            if byte == UInt8(ascii: "\\") { break }
            guard byte >= 0x20 else { throw failure("control character in a string") }
            position += 1
        }
        guard position < bytes.count else { throw failure("string not closed", at: quote) }
        // Slow path: decode escapes into a buffer.
        var decoded = Array(bytes[start..<position])
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                guard let value = decoded.withUnsafeBufferPointer(Self.string) else { throw failure("string is not UTF-8", at: start) }
                position += 1
                return value
            }
            guard byte >= 0x20 else { throw failure("control character in a string") }
            guard byte == UInt8(ascii: "\\") else {
                decoded.append(byte)
                position += 1
                continue
            }
            position += 1
            guard position < bytes.count else { break }
            let escape = bytes[position]
            position += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escape)
            case UInt8(ascii: "b"): decoded.append(0x08)
            case UInt8(ascii: "f"): decoded.append(0x0C)
            case UInt8(ascii: "n"): decoded.append(0x0A)
            case UInt8(ascii: "r"): decoded.append(0x0D)
            case UInt8(ascii: "t"): decoded.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try readHex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard matchLiteral("\\u") else { throw failure("unpaired surrogate in a string") }
                    let low = try readHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw failure("unpaired surrogate in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw failure("unpaired surrogate in a string")
                }
                guard let unicode = Unicode.Scalar(scalar) else { throw failure("invalid \\u escape") }
                decoded.append(contentsOf: String(unicode).utf8)
            default:
                throw failure("invalid escape \\\(Self.describe(escape))", at: position - 1)
            }
        }
        throw failure("string not closed", at: quote)
    }

    mutating func readHex4() throws(Failure) -> UInt32 {
        guard bytes.count - position >= 4 else { throw failure("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// At an opening quote: past the string, checked as a kept one is (UTF-8, escapes) but not built.
    /// Eight bytes at a time while none of them is a quote, a backslash, a control character or
    /// non-ASCII (nearly every byte of a Kubernetes object).
    mutating func skipStringBody() throws(Failure) {
        let quote = position
        guard let base = bytes.baseAddress else { throw failure("string not closed", at: quote) }
        let start = quote + 1
        let end = bytes.count
        var index = start
        var nonASCII = false
        let raw = UnsafeRawPointer(base)
        while true {
            while index + 8 <= end, Self.plainStringBytes(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
            guard index < end else { break }
            let byte = base[index]
            if byte == UInt8(ascii: "\"") {
                guard !nonASCII || Self.isUTF8(UnsafeBufferPointer(rebasing: bytes[start..<index])) else {
                    throw failure("string is not UTF-8", at: start)
                }
                position = index + 1
                return
            }
            if byte == UInt8(ascii: "\\") {
                position = quote
                _ = try readStringBody()
                return
            }
            guard byte >= 0x20 else {
                position = index
                throw failure("control character in a string")
            }
            if byte >= 0x80 { nonASCII = true }
            index += 1
        }
        position = end
        throw failure("string not closed", at: quote)
    }

    // Eight bytes at a time (SWAR): `(x - 0x01…) & ~x` sets a byte's high bit where x has a zero byte,
    // and may set one after a true one, never miss one; a flagged word is then read bytewise.

    /// The high bit set in the bytes that are a quote or a backslash (and maybe after them).
    @inline(__always)
    private static func quotesOrBackslashes(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quotes = word ^ 0x2222_2222_2222_2222
        let backslashes = word ^ 0x5C5C_5C5C_5C5C_5C5C
        return ((quotes &- ones) & ~quotes) | ((backslashes &- ones) & ~backslashes)
    }

    /// True when none of eight bytes is a quote or a backslash: inside a string, nothing to stop for
    /// when only following structure (unvalidated skips).
    @inline(__always)
    static func noQuoteOrBackslash(_ word: UInt64) -> Bool {
        quotesOrBackslashes(word) & 0x8080_8080_8080_8080 == 0
    }

    /// True when none of eight bytes is a quote, a backslash, below 0x20 or above 0x7F: inside a
    /// string, nothing to stop for when validating.
    @inline(__always)
    static func plainStringBytes(_ word: UInt64) -> Bool {
        let controls = (word &- 0x2020_2020_2020_2020) & ~word
        return (quotesOrBackslashes(word) | controls | word) & 0x8080_8080_8080_8080 == 0
    }

    /// Scans a number per RFC 8259. - Returns: its value when it is an integer that fits an `Int`.
    mutating func scanNumber() throws(Failure) -> (integer: Int?, fractionOrExponent: Bool) {
        let start = position
        var negative = false
        if peekByte() == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        guard let first = peekByte(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            throw failure("invalid number", at: start)
        }
        var value: Int? = 0
        if first == UInt8(ascii: "0") {
            position += 1
        } else {
            while let byte = peekByte(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                if let current = value {
                    let (times, o1) = current.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
                    value = o1 || o2 ? nil : sum
                }
                position += 1
            }
        }
        var fractionOrExponent = false
        if peekByte() == UInt8(ascii: ".") {
            fractionOrExponent = true
            position += 1
            guard try skipDigits() else { throw failure("invalid number", at: start) }
        }
        if let byte = peekByte(), byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            fractionOrExponent = true
            position += 1
            if let sign = peekByte(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { position += 1 }
            guard try skipDigits() else { throw failure("invalid number", at: start) }
        }
        return (value.map { negative ? -$0 : $0 }, fractionOrExponent)
    }

    mutating func skipDigits() throws(Failure) -> Bool {
        let start = position
        while let byte = peekByte(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) { position += 1 }
        return position > start
    }

    // MARK: UTF-8

    /// The string these bytes spell, or nil if they are not UTF-8. `String(decoding:)` repairs invalid
    /// input with U+FFFD, so its result equals the input byte for byte exactly when the input is valid;
    /// ASCII (nearly everything in Kubernetes objects) needs no second look. (`String(validating:)` is
    /// generic and unspecialized here: it cost more than all the parsing.)
    static func string(_ raw: UnsafeBufferPointer<UInt8>) -> String? {
        let value = String(decoding: raw, as: UTF8.self)
        if isASCII(raw) { return value }
        let utf8 = value.utf8
        return utf8.withContiguousStorageIfAvailable { $0.elementsEqual(raw) } ?? utf8.elementsEqual(raw) ? value : nil
    }

    static func isUTF8(_ raw: UnsafeBufferPointer<UInt8>) -> Bool {
        isASCII(raw) || string(raw) != nil
    }

    static func isASCII(_ raw: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        let count = raw.count
        guard let base = raw.baseAddress else { return true }
        // Eight bytes at a time.
        let raw8 = UnsafeRawPointer(base)
        while index + 8 <= count {
            if raw8.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            index += 8
        }
        while index < count {
            if base[index] & 0x80 != 0 { return false }
            index += 1
        }
        return true
    }
}
