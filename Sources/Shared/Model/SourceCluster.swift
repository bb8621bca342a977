/// A source of endpoints: one Kubernetes cluster (or one file source). Its name is part of every Redis
/// key of that source and of Envoy localities, so it is a DNS label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
public struct SourceCluster: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let name: String

    /// - Throws: `ModelError.invalidName` if `name` is not a DNS label.
    public init(_ name: String) throws(ModelError) {
        guard DNSName.isLabel(name) else {
            throw ModelError(.invalidName, "source cluster name \(String(reflecting: name.prefix(80))) is not a DNS label")
        }
        self.name = name
    }

    public var description: String { name }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.name < rhs.name }
}
