import Shared

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
