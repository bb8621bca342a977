import Shared
import Synchronization

/// Wraps a store writer and can cut it off, as a network partition between an ingestor and Redis would:
/// while cut, every call fails with `StoreError.unavailable`.
public final class PartitionedStore: EndpointStoreWriter {
    private let base: any EndpointStoreWriter
    private let cut = Mutex(false)

    public init(_ base: any EndpointStoreWriter) { self.base = base }

    public func setPartitioned(_ partitioned: Bool) { cut.withLock { $0 = partitioned } }

    public var session: UInt64 { base.session }

    private func check() throws {
        if cut.withLock({ $0 }) { throw StoreError(.unavailable, "partitioned (test)") }
    }

    public func acquireLease(source: SourceCluster, holder: String, ttl: Duration) async throws -> Lease? {
        try check()
        return try await base.acquireLease(source: source, holder: holder, ttl: ttl)
    }
    public func renewLease(_ lease: Lease, ttl: Duration) async throws -> Bool {
        try check()
        return try await base.renewLease(lease, ttl: ttl)
    }
    public func releaseLease(_ lease: Lease) async throws {
        try check()
        try await base.releaseLease(lease)
    }
    public func write(_ writes: [StoreWrite], lease: Lease) async throws -> WriteResult {
        try check()
        return try await base.write(writes, lease: lease)
    }
    public func markSynced(generation: String, serviceCount: Int, lease: Lease) async throws {
        try check()
        try await base.markSynced(generation: generation, serviceCount: serviceCount, lease: lease)
    }
    public func heartbeat(lease: Lease, ttl: Duration) async throws {
        try check()
        try await base.heartbeat(lease: lease, ttl: ttl)
    }
    public func storedHashes(source: SourceCluster) async throws -> [ServiceKey: UInt64] {
        try check()
        return try await base.storedHashes(source: source)
    }
}

/// Polls `condition` until it holds or `within` passes; records an issue-free boolean result.
public func eventually(within: Duration = .seconds(15), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + within
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
