/// What both sides need to know of their connection to the store.
public protocol EndpointStoreSession: Sendable {
    /// Grows whenever the connection to the store was re-established (a restart, a failover to a
    /// replica, a cluster node reached anew): what was acknowledged before may be missing now, so a
    /// writer compares the store with what it published (reconciles) and a reader reads every source
    /// in full again.
    /// Read on every turn of the publisher's and follower's loops: cheap, no suspension.
    var session: UInt64 { get }
}

extension EndpointStoreSession {
    /// A store that cannot lose what it acknowledged (the in-memory store) keeps one session.
    public var session: UInt64 { 0 }
}
