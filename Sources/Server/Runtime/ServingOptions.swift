/// The gRPC listener's limits and connection management.
public struct ServingOptions: Sendable, Hashable {
    public var host = "0.0.0.0"
    /// 0 picks a free port (tests).
    public var port = 18000
    /// Largest request message accepted.
    public var maximumRequestBytes = 4 * 1024 * 1024
    /// Most concurrent HTTP/2 streams per connection.
    public var maximumStreamsPerConnection = 100
    /// Ping an idle connection after this long; close it if the ping is not answered in `keepaliveTimeout`.
    public var keepaliveTime: Duration = .seconds(30)
    public var keepaliveTimeout: Duration = .seconds(10)
    /// Close connections (GOAWAY) after this age, each at a random point within ± `connectionAgeJitter`
    /// of it, so clients spread over replicas that were added later. nil: never.
    public var maximumConnectionAge: Duration? = .seconds(30 * 60)
    /// Fraction of `maximumConnectionAge`, 0 to 0.5.
    public var connectionAgeJitter = 0.1
    /// How long a closing connection (age or shutdown) may take to finish.
    public var closeGracePeriod: Duration = .seconds(10)

    public init() {}

    /// The age of one connection: `maximumConnectionAge` moved by a random fraction of the jitter.
    public func connectionAge<G: RandomNumberGenerator>(using generator: inout G) -> Duration? {
        guard let age = maximumConnectionAge else { return nil }
        let jitter = min(max(connectionAgeJitter, 0), 0.5)
        guard jitter > 0 else { return age }
        return age * Double.random(in: (1 - jitter)...(1 + jitter), using: &generator)
    }
}
