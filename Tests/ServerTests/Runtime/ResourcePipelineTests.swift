import LegationTestSupport
import Server
import Shared
import Testing

/// The pipeline from store deliveries to published snapshots, at start.
@Suite struct ResourcePipelineTests {
    typealias F = XDSFixture

    /// At a cold start nothing is built until every source has been read in full: a snapshot of the
    /// first source alone would be built only to be built again (and would hold up the reading of the
    /// others). The first snapshot holds every source, published at once.
    @Test func theFirstSnapshotWaitsForEverySourceAndHoldsThemAll() async throws {
        let store = InMemoryEndpointStore()
        let east = try await TestWriter.start(store, source: F.east)
        try await east.publish([F.set("web", ["10.0.0.1"])])
        let west = try await TestWriter.start(store, source: F.west)
        try await west.publish([F.set("api", ["10.0.1.1"], source: F.west)])
        let release = AsyncStream<Void>.makeStream()
        let reader = ScriptedReader(store) { source in
            if source == F.west { for await _ in release.stream { break } }  // west's read waits
        }
        let options = XDSServiceTests.options(required: [F.east, F.west])
        let runtime = XDSServerRuntime(reader: reader, options: options, logger: .quiet())
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await runtime.run() }
            // East is read and delivered; west's read waits.
            #expect(await eventually { await runtime.pipeline.sourceStatuses.first { $0.source == F.east }?.services == 1 })
            #expect(await eventually { reader.reads.contains(F.west) })
            // Ten times the debounce's maximum: nothing is built meanwhile.
            try await Task.sleep(for: options.pipeline.debounce.maximum * 10)
            #expect(runtime.hub.snapshot.revision == 0, "nothing built before the store is read in full")
            #expect(runtime.hub.notReadyReason != nil)

            release.continuation.yield()
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            let snapshot = runtime.hub.snapshot
            #expect(snapshot.revision == 1, "one snapshot, with every source")
            #expect(snapshot.all(.cluster).keys.sorted() == ["default/api:http", "default/web:http"])
            group.cancelAll()
        }
    }
}
