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
