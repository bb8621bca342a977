/// A Kubernetes service, by namespace and name. The same key in two source clusters is the same
/// service: its endpoints are merged (design §4).
public struct ServiceKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let namespace: String
    public let name: String

    /// - Throws: `ModelError.invalidName` if either part is not a DNS label.
    public init(namespace: String, name: String) throws(ModelError) {
        guard DNSName.isLabel(namespace) else {
            throw ModelError(.invalidName, "namespace \(String(reflecting: namespace.prefix(80))) is not a DNS label")
        }
        guard DNSName.isLabel(name) else {
            throw ModelError(.invalidName, "service name \(String(reflecting: name.prefix(80))) is not a DNS label")
        }
        self.namespace = namespace
        self.name = name
    }

    /// Parses `namespace/name`, the form used in Redis hash fields and change-stream entries.
    public init(parsing text: String) throws(ModelError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw ModelError(.invalidName, "service key \(String(reflecting: text.prefix(80))) is not namespace/name")
        }
        try self.init(namespace: String(parts[0]), name: String(parts[1]))
    }

    /// `namespace/name`.
    public var description: String { "\(namespace)/\(name)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}
