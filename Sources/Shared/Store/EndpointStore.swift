/// The writing side of the store: one active writer per source, fenced by a lease epoch.
///
/// Semantics (both implementations, checked by the contract suite): latest value wins; a put whose
/// content hash equals the stored one writes nothing; every write of a batch is applied atomically with
/// its change-stream entry; a write with a stale epoch is refused whole with `StoreError.staleEpoch`.
public protocol EndpointStoreWriter: EndpointStoreSession {
    /// Takes the source's lease for `holder`, or renews it if `holder` has it already.
    /// - Returns: the lease, or nil if another holder has it (the caller waits and tries again).
    func acquireLease(source: SourceCluster, holder: String, ttl: Duration) async throws -> Lease?

    /// Extends the lease. - Returns: false if it was lost (expired and taken, or data lost).
    func renewLease(_ lease: Lease, ttl: Duration) async throws -> Bool

    /// Gives the lease up (graceful shutdown), so a standby takes over without waiting for the TTL.
    func releaseLease(_ lease: Lease) async throws

    /// Applies `writes` in order, atomically, under `lease`.
    /// - Throws: `StoreError.staleEpoch` / `.noLease` if the lease is not current; nothing is written.
    func write(_ writes: [StoreWrite], lease: Lease) async throws -> WriteResult

    /// Sets the sync canary: every service of the source's `generation` has been written. Marking again
    /// what the same lease marked for the same generation changes nothing (no revision, no entry).
    /// - Throws: `StoreError.generationChanged` if the stored generation is not `generation` (the data
    ///   was lost in between: republish, then mark synced again).
    func markSynced(generation: String, serviceCount: Int, lease: Lease) async throws

    /// Refreshes the writer's heartbeat, which expires after `ttl`.
    func heartbeat(lease: Lease, ttl: Duration) async throws

    /// Version hashes (`EndpointSet.versionHash`) of every stored service of the source, for anti-entropy.
    func storedHashes(source: SourceCluster) async throws -> [ServiceKey: UInt64]
}

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

/// What both sides need to know of their connection to the store.
public protocol EndpointStoreSession: Sendable {
    /// Grows whenever the connection to the store was re-established (a restart, a failover to a
    /// replica, a cluster node reached anew): what was acknowledged before may be missing now, so a
    /// writer compares the store with what it published (reconciles) and a reader reads every source
    /// in full again.
    func session() async -> UInt64
}

extension EndpointStoreSession {
    /// A store that cannot lose what it acknowledged (the in-memory store) keeps one session.
    public func session() async -> UInt64 { 0 }
}

/// Operator actions on the store.
public protocol EndpointStoreAdministration: Sendable {
    /// Removes a source explicitly: its data is deleted and a tombstone tells every reader to drain its
    /// endpoints. (A source that merely stops, or whose data is lost, keeps its endpoints.)
    func removeSource(_ source: SourceCluster) async throws
}

/// A store both sides can use.
public typealias EndpointStore = EndpointStoreWriter & EndpointStoreReader & EndpointStoreAdministration
