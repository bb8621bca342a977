import Shared

/// How the server turns endpoint sets into Envoy resources. Every replica must use the same options, or
/// their versions differ and a reconnecting Envoy is sent everything again.
public struct ResourceOptions: Sendable, Hashable {
    public enum LoadBalancing: String, Sendable, Hashable, Codable, CaseIterable {
        case roundRobin = "ROUND_ROBIN"
        case leastRequest = "LEAST_REQUEST"
        case random = "RANDOM"
        case ringHash = "RING_HASH"
        case maglev = "MAGLEV"
    }

    /// Upstream connect timeout of every cluster.
    public var connectTimeoutMilliseconds: Int = 1000
    public var loadBalancing: LoadBalancing = .roundRobin
    /// Keep not-serving endpoints as UNHEALTHY instead of leaving them out (design §4).
    public var keepUnservingEndpoints = false
    /// Priorities by locality for clients that say where they are (design §4). Off: every endpoint at
    /// priority 0 for everyone, whatever services' annotations say.
    public var localityPriorities = true
    /// The order of services that set none (`legation.io/failover`).
    public var failoverOrder = FailoverPolicy.proximity

    public init() {}

    /// What is wrong with these options, if anything.
    public func problems() -> [String] {
        var problems: [String] = []
        if !(1...600_000).contains(connectTimeoutMilliseconds) {
            problems.append("connect timeout must be between 1 ms and 10 minutes, not \(connectTimeoutMilliseconds) ms")
        }
        return problems
    }
}
