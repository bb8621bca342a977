import LegationTestSupport
import Shared
import SwiftProtobuf
import Testing

/// The reader's rules, driven with no store at all.
@Suite struct SourceFeedTests {
    let source = Fixtures.source()

    private func snapshot(generation: String? = "g1", revision: UInt64, sets: [EndpointSet], canary: Bool = true)
        throws -> SourceSnapshot
    {
        var records: [String: [UInt8]] = [:]
        for set in sets { records[set.service.description] = try set.record(epoch: 1, publishedAtUnixMilliseconds: 0).serializedBytes() }
        return SourceSnapshot(
            source: source, generation: generation, revision: revision, cursor: StreamCursor(milliseconds: 100, sequence: revision),
            records: records,
            canary: canary
                ? SyncCanary(
                    generation: generation ?? "", epoch: 1, holder: "i", syncedAtUnixMilliseconds: 0, serviceCount: UInt64(sets.count))
                : nil,
            canaryError: nil, heartbeat: nil, removed: false)
    }

    private func put(_ set: EndpointSet, revision: UInt64, generation: String = "g1") throws -> StoreChange {
        StoreChange(
            cursor: StreamCursor(milliseconds: 200, sequence: revision), revision: revision, generation: generation,
            kind: .put(service: set.service.description, record: try set.record(epoch: 1, publishedAtUnixMilliseconds: 0).serializedBytes())
        )
    }

    @Test func aSnapshotUpsertsOnlyWhatChanged() throws {
        var feed = SourceFeed(source: source)
        let web = Fixtures.endpointSet("web")
        let api = Fixtures.endpointSet("api")
        #expect(feed.apply(try snapshot(revision: 2, sets: [web, api])).updates.count == 2)
        let again = feed.apply(try snapshot(revision: 2, sets: [web, api]))
        #expect(again.updates.isEmpty)
    }

    @Test func entriesMustFollowOneAnother() throws {
        var feed = SourceFeed(source: source)
        _ = feed.apply(try snapshot(revision: 5, sets: []))
        let web = Fixtures.endpointSet("web")

        var copy = feed
        #expect(copy.apply([try put(web, revision: 7)]).resyncReason?.contains("gap") == true)
        copy = feed
        #expect(copy.apply([try put(web, revision: 5)]).resyncReason?.contains("back") == true)
        copy = feed
        #expect(copy.apply([try put(web, revision: 6, generation: "g2")]).resyncReason?.contains("generation") == true)
        copy = feed
        let malformed = StoreChange(cursor: .start, revision: 6, generation: "g1", kind: .malformed("no op"))
        #expect(copy.apply([malformed]).resyncReason != nil)

        let fine = feed.apply([try put(web, revision: 6)])
        #expect(fine.resyncReason == nil)
        #expect(fine.updates == [.upsert(web)])
        #expect(feed.revision == 6)
    }

    @Test func updatesBeforeAGapStand() throws {
        var feed = SourceFeed(source: source)
        _ = feed.apply(try snapshot(revision: 1, sets: []))
        let web = Fixtures.endpointSet("web")
        let api = Fixtures.endpointSet("api")
        let outcome = feed.apply([try put(web, revision: 2), try put(api, revision: 9)])
        #expect(outcome.updates == [.upsert(web)])
        #expect(outcome.resyncReason != nil)
        #expect(feed.revision == 2)
    }

    @Test func withoutACanaryNothingIsDeleted() throws {
        var feed = SourceFeed(source: source)
        let web = Fixtures.endpointSet("web")
        let api = Fixtures.endpointSet("api")
        _ = feed.apply(try snapshot(revision: 2, sets: [web, api]))
        let partial = feed.apply(try snapshot(generation: "g2", revision: 1, sets: [web], canary: false))
        #expect(partial.updates.isEmpty)
        #expect(!feed.isSynced)
        let delete = StoreChange(cursor: .start, revision: 2, generation: "g2", kind: .delete(service: "default/web"))
        #expect(feed.apply([delete]).updates.isEmpty, "a deletion before the canary waits for it")
        let synced = StoreChange(cursor: .start, revision: 3, generation: "g2", kind: .synced)
        #expect(feed.apply([synced]).resyncReason != nil)
        let settled = feed.apply(try snapshot(generation: "g2", revision: 3, sets: [web]))
        #expect(settled.updates == [.remove(api.service)])
    }

    @Test func aBadFieldNameIsRejectedNotFatal() throws {
        var feed = SourceFeed(source: source)
        var bad = try snapshot(revision: 1, sets: [Fixtures.endpointSet("web")])
        bad.records["not a key"] = [1, 2, 3]
        let outcome = feed.apply(bad)
        #expect(outcome.rejections.count == 1)
        #expect(feed.services.count == 1)
    }

    /// A large snapshot is decoded on every core: what it does is what a record-by-record reading
    /// does, in the same order. Bad names, bad bytes and a record of another service among 600 good ones.
    @Test func aLargeSnapshotReadsAsItsRecordsOneByOne() throws {
        let sets = (0..<600).map { Fixtures.endpointSet("svc-\($0)", count: 1 + $0 % 5) }
        var large = try snapshot(revision: 9, sets: sets)
        large.records["not a key"] = [1, 2, 3]
        large.records["default/garbled"] = [0xFF, 0xFF, 0xFF]
        large.records["default/svc-0"] = large.records["default/svc-1"]  // svc-1's record under svc-0's name
        var feed = SourceFeed(source: source)
        let outcome = feed.apply(large)

        var expected: [EndpointChange] = []
        for set in sets.sorted(by: { $0.service.description < $1.service.description }) where set.service.name != "svc-0" {
            expected.append(.upsert(set))
        }
        #expect(outcome.updates == expected)
        #expect(outcome.rejections.map(\.field) == ["default/garbled", "default/svc-0", "not a key"])
        #expect(feed.services.count == 599)
        #expect(feed.services[try ServiceKey(parsing: "default/svc-599")] == sets[599])

        // Read again, with svc-0 mended: only svc-0 changes.
        large.records["default/svc-0"] = try sets[0].record(epoch: 1, publishedAtUnixMilliseconds: 0).serializedBytes()
        #expect(feed.apply(large).updates == [.upsert(sets[0])])
    }
}
