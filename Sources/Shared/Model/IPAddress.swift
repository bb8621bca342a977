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
        if let text = convert(text, family: AF_INET, size: 4) { return (text, .v4) }
        if let text = convert(text, family: AF_INET6, size: 16) { return (text, .v6) }
        return nil
    }

    private static func convert(_ text: String, family: Int32, size: Int) -> String? {
        var bytes = [UInt8](repeating: 0, count: size)
        guard inet_pton(family, text, &bytes) == 1 else { return nil }
        var output = [CChar](repeating: 0, count: 64)
        guard inet_ntop(family, bytes, &output, socklen_t(output.count)) != nil else { return nil }
        return String(decoding: output.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
