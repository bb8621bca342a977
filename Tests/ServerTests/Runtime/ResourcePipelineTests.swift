import LegationTestSupport
import Server
import Shared
import Synchronization
import Testing

/// The pipeline from store deliveries to published snapshots, at start.
@Suite struct ResourcePipelineTests {
    typealias F = XDSFixture

    /// A reader whose full read of one source waits until the test releases it.
    final class HeldReader: EndpointStoreReader {
        let base: InMemoryEndpointStore
        let held: SourceCluster
        let release = AsyncStream<Void>.makeStream()
        let reads = Mutex<[SourceCluster]>([])

        init(_ base: InMemoryEndpointStore, holding held: SourceCluster) {
            self.base = base
            self.held = held
        }

        var session: UInt64 { base.session }
        func sources() async throws -> Set<SourceCluster> { try await base.sources() }
        func snapshot(of source: SourceCluster) async throws -> SourceSnapshot {
            reads.withLock { $0.append(source) }
            if source == held { for await _ in release.stream { break } }
            return try await base.snapshot(of: source)
        }
        func heartbeats(of sources: [SourceCluster]) async throws -> [SourceCluster: Heartbeat] {
            try await base.heartbeats(of: sources)
        }
        func changes(after cursors: [SourceCluster: StreamCursor], limit: Int, wait: Duration?) async throws
            -> [SourceCluster: [StoreChange]]
        {
            try await base.changes(after: cursors, limit: limit, wait: wait)
        }
    }

    /// At a cold start nothing is built until every source has been read in full: a snapshot of the
    /// first source alone would be built only to be built again (and would hold up the reading of the
    /// others). The first snapshot holds every source, published at once.
    @Test func theFirstSnapshotWaitsForEverySourceAndHoldsThemAll() async throws {
        let store = InMemoryEndpointStore()
        let east = try await TestWriter.start(store, source: F.east)
        try await east.publish([F.set("web", ["10.0.0.1"])])
        let west = try await TestWriter.start(store, source: F.west)
        try await west.publish([F.set("api", ["10.0.1.1"], source: F.west)])
        let reader = HeldReader(store, holding: F.west)
        let options = XDSServiceTests.options(required: [F.east, F.west])
        let runtime = XDSServerRuntime(reader: reader, options: options, logger: .quiet())
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await runtime.run() }
            // East is read and delivered; west's read waits.
            #expect(await eventually { await runtime.pipeline.sourceStatuses.first { $0.source == F.east }?.services == 1 })
            #expect(await eventually { reader.reads.withLock { $0.contains(F.west) } })
            // Ten times the debounce's maximum: nothing is built meanwhile.
            try await Task.sleep(for: options.pipeline.debounce.maximum * 10)
            #expect(runtime.hub.snapshot.revision == 0, "nothing built before the store is read in full")
            #expect(runtime.hub.notReadyReason != nil)

            reader.release.continuation.yield()
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            let snapshot = runtime.hub.snapshot
            #expect(snapshot.revision == 1, "one snapshot, with every source")
            #expect(snapshot.all(.cluster).keys.sorted() == ["default/api:http", "default/web:http"])
            group.cancelAll()
        }
    }
}
