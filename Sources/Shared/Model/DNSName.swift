/// Validation of the names Kubernetes uses: RFC 1123 labels (namespaces, services, port names, source
/// clusters) and subdomains (zones, nodes, hostnames). Checked byte by byte: no regex, no allocation.
package enum DNSName {
    /// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes.
    package static func isLabel(_ text: String) -> Bool {
        let bytes = text.utf8
        guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-")
        else { return false }
        return bytes.allSatisfy { isLowerAlphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    /// Dot-separated labels, at most 253 bytes (Kubernetes object names, node names).
    static func isSubdomain(_ text: String) -> Bool {
        guard (1...253).contains(text.utf8.count) else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel(String($0)) }
    }

    /// Printable ASCII without spaces, at most `limit` bytes: topology labels such as zones
    /// (`us-east-1a`, `europe-west1-b`) and free-form identifiers that end up in metrics and Envoy config.
    package static func isToken(_ text: String, limit: Int = 253) -> Bool {
        let bytes = text.utf8
        return bytes.count <= limit && bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
