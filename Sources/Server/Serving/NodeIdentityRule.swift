import X509

/// Binds an xDS client's node id to the identity in its TLS client certificate (`grpc.tls.nodeIdentity`),
/// so that a sidecar holding one workload's certificate cannot ask as another node.
///
/// The rule is a pattern matched against the certificate's URI SANs (SPIFFE IDs) and DNS SANs:
/// `{node}` stands for the node id the client sends, literally; `*` matches one or more characters
/// other than `/` and `.` (one path segment or one DNS label). Examples:
///
/// - `spiffe://mesh.example/ns/*/sa/*`: any workload of the trust domain, whatever its node id;
/// - `spiffe://mesh.example/ns/*/sa/{node}`: the node id must be the certificate's service account;
/// - `{node}.sidecars.mesh.example`: the node id must be the certificate's DNS name's first label(s).
public struct NodeIdentityRule: Sendable, Hashable, CustomStringConvertible {
    enum Token: Hashable {
        case literal(String)
        case wildcard
        case node
    }

    let tokens: [Token]
    public let description: String

    public init(_ pattern: String) throws(IdentityPatternError) {
        guard !pattern.isEmpty, pattern.utf8.count <= 1024 else { throw IdentityPatternError("the pattern must be 1...1024 bytes") }
        var tokens: [Token] = []
        var literal = ""
        var rest = Substring(pattern)
        while let first = rest.first {
            if rest.hasPrefix("{node}") {
                if !literal.isEmpty { tokens.append(.literal(literal)) }
                literal = ""
                tokens.append(.node)
                rest = rest.dropFirst(6)
            } else if first == "*" {
                if !literal.isEmpty { tokens.append(.literal(literal)) }
                literal = ""
                if tokens.last == .wildcard { throw IdentityPatternError("`**` is not a pattern: `*` is one segment") }
                tokens.append(.wildcard)
                rest = rest.dropFirst()
            } else if first == "{" || first == "}" {
                throw IdentityPatternError("only `{node}` may appear in braces")
            } else {
                literal.append(first)
                rest = rest.dropFirst()
            }
        }
        if !literal.isEmpty { tokens.append(.literal(literal)) }
        if tokens.filter({ $0 == .node }).count > 1 { throw IdentityPatternError("`{node}` may appear once") }
        self.tokens = tokens
        description = pattern
    }

    /// Whether a client presenting `identities` (its certificate's SANs) may call itself `nodeID`.
    public func allows(nodeID: String, identities: [String]) -> Bool {
        identities.contains { matches(Array($0.utf8)[...], tokens[...], nodeID: Array(nodeID.utf8)) }
    }

    /// The URI and DNS subject alternative names of a certificate.
    public static func identities(of certificate: Certificate) -> [String] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            switch name {
            case .uniformResourceIdentifier(let uri): uri
            case .dnsName(let dns): dns
            default: nil
            }
        }
    }

    private func matches(_ text: ArraySlice<UInt8>, _ tokens: ArraySlice<Token>, nodeID: [UInt8]) -> Bool {
        guard let token = tokens.first else { return text.isEmpty }
        let rest = tokens.dropFirst()
        switch token {
        case .literal(let literal):
            let bytes = Array(literal.utf8)
            return text.starts(with: bytes) && matches(text.dropFirst(bytes.count), rest, nodeID: nodeID)
        case .node:
            return !nodeID.isEmpty && text.starts(with: nodeID) && matches(text.dropFirst(nodeID.count), rest, nodeID: nodeID)
        case .wildcard:
            // One or more bytes that are not `/` or `.`; try each length (names are short; one `*` per segment).
            var end = text.startIndex
            while end < text.endIndex, text[end] != UInt8(ascii: "/"), text[end] != UInt8(ascii: ".") {
                end += 1
                if matches(text[end...], rest, nodeID: nodeID) { return true }
            }
            return false
        }
    }
}
