/// Everything stored for one source, read atomically: the records and the stream position they
/// correspond to, so that reading the stream from `cursor` yields exactly the later changes.
public struct SourceSnapshot: Sendable {
    public var source: SourceCluster
    /// nil when the source has no data (never written, or lost).
    public var generation: String?
    public var revision: UInt64
    public var cursor: StreamCursor
    /// Raw records by service field (`namespace/name`); decoded (and rejected) by the reader.
    public var records: [String: [UInt8]]
    /// The canary, if present and decodable; `canaryError` says why one present could not be decoded.
    public var canary: SyncCanary?
    public var canaryError: String?
    public var heartbeat: Heartbeat?
    /// The source was removed explicitly: its endpoints are to be drained.
    public var removed: Bool

    public init(
        source: SourceCluster, generation: String?, revision: UInt64, cursor: StreamCursor, records: [String: [UInt8]],
        canary: SyncCanary?, canaryError: String?, heartbeat: Heartbeat?, removed: Bool
    ) {
        self.source = source
        self.generation = generation
        self.revision = revision
        self.cursor = cursor
        self.records = records
        self.canary = canary
        self.canaryError = canaryError
        self.heartbeat = heartbeat
        self.removed = removed
    }
}
