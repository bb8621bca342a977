#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parsing and canonical text of endpoint addresses. Endpoints are keyed by their address, so
/// `fd00::05` and `fd00::5` must be the same endpoint: everything is stored in canonical form.
enum IPAddress {
    enum Family: Sendable { case v4, v6 }

    /// The canonical text of `text` (RFC 5952 for IPv6) and its family, or nil if it is not an address.
    static func canonical(_ text: String) -> (text: String, family: Family)? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        if isCanonicalIPv4(text) { return (text, .v4) }  // the common case: no allocation, no libc
        if let text = convert(text, family: AF_INET, size: 4) { return (text, .v4) }
        if let text = convert(text, family: AF_INET6, size: 16) { return (text, .v6) }
        return nil
    }

    /// `a.b.c.d`, each 0...255 without leading zeros: exactly what inet_ntop would print.
    private static func isCanonicalIPv4(_ text: String) -> Bool {
        var octets = 0
        var value = 0
        var digits = 0
        var firstDigit: UInt8 = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return false }
                octets += 1
                value = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                if digits == 0 { firstDigit = byte } else if firstDigit == UInt8(ascii: "0") { return false }
                digits += 1
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                guard digits <= 3, value <= 255 else { return false }
            } else {
                return false
            }
        }
        return octets == 3 && digits > 0
    }

    private static func convert(_ text: String, family: Int32, size: Int) -> String? {
        var bytes = [UInt8](repeating: 0, count: size)
        guard inet_pton(family, text, &bytes) == 1 else { return nil }
        var output = [CChar](repeating: 0, count: 64)
        guard inet_ntop(family, bytes, &output, socklen_t(output.count)) != nil else { return nil }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
