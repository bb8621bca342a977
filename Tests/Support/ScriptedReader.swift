import Shared
import Synchronization

/// Wraps a store reader and runs `beforeSnapshot` before each full read of a source: to hold a read,
/// slow it down or fail it. Counts the reads in flight.
public final class ScriptedReader: EndpointStoreReader {
    private let base: any EndpointStoreReader
    private let beforeSnapshot: @Sendable (SourceCluster) async throws -> Void
    private let state = Mutex<(reads: [SourceCluster], inFlight: Int, mostInFlight: Int)>(([], 0, 0))

    public init(_ base: any EndpointStoreReader, beforeSnapshot: @escaping @Sendable (SourceCluster) async throws -> Void) {
        self.base = base
        self.beforeSnapshot = beforeSnapshot
    }

    /// Every full read asked for, in the order asked.
    public var reads: [SourceCluster] { state.withLock { $0.reads } }
    /// The most full reads that were in flight at once.
    public var mostInFlight: Int { state.withLock { $0.mostInFlight } }

    public var session: UInt64 { base.session }
    public func sources() async throws -> Set<SourceCluster> { try await base.sources() }
    public func snapshot(of source: SourceCluster) async throws -> SourceSnapshot {
        state.withLock {
            $0.reads.append(source)
            $0.inFlight += 1
            $0.mostInFlight = max($0.mostInFlight, $0.inFlight)
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        try await beforeSnapshot(source)
        return try await base.snapshot(of: source)
    }
    public func heartbeats(of sources: [SourceCluster]) async throws -> [SourceCluster: Heartbeat] {
        try await base.heartbeats(of: sources)
    }
    public func changes(after cursors: [SourceCluster: StreamCursor], limit: Int, wait: Duration?) async throws
        -> [SourceCluster: [StoreChange]]
    {
        try await base.changes(after: cursors, limit: limit, wait: wait)
    }
}
