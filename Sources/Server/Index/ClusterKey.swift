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

/// How an endpoint's conditions become an Envoy health status (design §4).
public enum EndpointHealth: String, Sendable, Hashable {
    case healthy = "HEALTHY"
    /// Serving but terminating: Envoy sends no new requests, lets the in-flight ones finish.
    case draining = "DRAINING"
    case unhealthy = "UNHEALTHY"

    /// ready → healthy; serving and terminating → draining; not serving → nil (left out), or unhealthy
    /// when `keepUnready` is set.
    public static func of(_ conditions: Endpoint.Conditions, keepUnready: Bool = false) -> EndpointHealth? {
        if conditions.ready { return .healthy }
        if conditions.serving, conditions.terminating { return .draining }
        if conditions.serving { return .healthy }
        return keepUnready ? .unhealthy : nil
    }
}
