import Shared

/// One Envoy cluster: a (namespace, service, port) whose endpoints are the union over every source
/// cluster that exports the service (design §4).
///
/// WARNING - STABLE API: `name` is what sidecars, routes and dashboards refer to. Scheme:
/// `<namespace>/<service>:<port name>`, or `<namespace>/<service>:<port number>` for an unnamed port.
public struct ClusterKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let service: ServiceKey
    /// The port's name, or its number as text when the port is unnamed.
    public let port: String

    public init(service: ServiceKey, port: ServicePort) {
        self.service = service
        self.port = port.name.isEmpty ? String(port.port) : port.name
    }

    public var name: String { "\(service.namespace)/\(service.name):\(port)" }
    public var description: String { name }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.service, lhs.port) < (rhs.service, rhs.port) }
}
