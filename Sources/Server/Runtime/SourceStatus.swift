import Shared

/// What the server knows of one source cluster, for readiness, metrics and `/debug/sources`.
public struct SourceStatus: Sendable, Hashable {
    public var source: SourceCluster
    public var services: Int
    /// The writer's canary for the current data has been seen.
    public var synced: Bool
    /// Explicitly removed: its endpoints are drained.
    public var removed: Bool
    /// The last heartbeat; nil when it expired (the writer stopped) or none was ever seen.
    public var heartbeat: Heartbeat?
    /// Heartbeat expired: endpoints kept, flagged stale (design §4).
    public var stale: Bool
    /// When the last change of this source was applied (wall clock, ms).
    public var lastChangeUnixMilliseconds: Int64?
    /// Records refused since start.
    public var rejectedRecords: Int
}
