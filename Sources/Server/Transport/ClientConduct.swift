import NIOCore

/// What a client of the xDS listener may not do too often, counted per connection: reset streams
/// faster than `maximumResetsPerSecond` (the "rapid reset" attack, CVE-2023-44487) or ping more often
/// than `minimumPingInterval` (gRPC's keepalive enforcement: the third ping too soon is
/// "too_many_pings"). Either is a connection error, ENHANCE_YOUR_CALM. Socket-free: the connection
/// passes the time.
struct ClientConduct {
    let maximumResetsPerSecond: Int
    let minimumPingInterval: Duration
    private var resets: (count: Int, since: NIODeadline?) = (0, nil)
    private var lastPing: NIODeadline?
    private var pingStrikes = 0

    init(maximumResetsPerSecond: Int, minimumPingInterval: Duration) {
        self.maximumResetsPerSecond = maximumResetsPerSecond
        self.minimumPingInterval = minimumPingInterval
    }

    /// The client reset a stream at `now`.
    mutating func streamReset(at now: NIODeadline) throws(HTTP2Wire.ConnectionError) {
        if let since = resets.since, now - since <= .seconds(1) {
            resets.count += 1
        } else {
            resets = (1, now)
        }
        if resets.count > maximumResetsPerSecond {
            throw .init(.enhanceYourCalm, "more than \(maximumResetsPerSecond) stream resets in a second")
        }
    }

    /// The client sent a PING (not an acknowledgement) at `now`.
    mutating func ping(at now: NIODeadline) throws(HTTP2Wire.ConnectionError) {
        defer { lastPing = now }
        guard let lastPing, now - lastPing < .nanoseconds(minimumPingInterval.nanoseconds) else { return }
        pingStrikes += 1
        if pingStrikes > 2 { throw .init(.enhanceYourCalm, "too_many_pings", metric: "too_many_pings") }
    }
}
