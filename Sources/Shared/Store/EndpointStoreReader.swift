/// The reading side: any number of readers, each restartable from its last cursor.
public protocol EndpointStoreReader: EndpointStoreSession {
    /// Every source that has registered itself (a source's writer registers on taking its lease).
    func sources() async throws -> Set<SourceCluster>

    /// One source's whole state, read atomically with the stream position it corresponds to.
    func snapshot(of source: SourceCluster) async throws -> SourceSnapshot

    /// The current heartbeat of each source (absent: expired or never sent). Cheap: one round trip for
    /// all of them, read often to tell live sources from stale ones.
    func heartbeats(of sources: [SourceCluster]) async throws -> [SourceCluster: Heartbeat]

    /// Changes after each cursor, at most `limit` per source, in stream order. Waits up to `wait` for a
    /// first change when there is none (nil: do not wait).
    func changes(after cursors: [SourceCluster: StreamCursor], limit: Int, wait: Duration?) async throws
        -> [SourceCluster: [StoreChange]]
}
