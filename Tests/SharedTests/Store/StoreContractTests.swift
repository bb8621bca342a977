import LegationTestSupport
import Shared
import SwiftProtobuf
import Testing

/// One suite, run against the in-memory store and a real redis-server (plain and TLS): both must keep
/// the same promises (docs/redis-schema.md).
@Suite(.timeLimit(.minutes(1)))
struct StoreContractTests {
    let source = Fixtures.source()

    private func withHarness(
        _ kind: StoreKind, streamMaxLength: Int = 10_000, _ body: (StoreHarness) async throws -> Void
    ) async throws {
        let harness = try await StoreHarness.make(kind, streamMaxLength: streamMaxLength)
        do {
            try await body(harness)
        } catch {
            await harness.shutdown()
            throw error
        }
        await harness.shutdown()
    }

    /// Takes the lease, writes `sets`, sets the canary: a source whose initial list is published.
    private func publishSynced(_ sets: [EndpointSet], to store: any EndpointStore) async throws -> Lease {
        let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
        let result = try await store.write(sets.map(StoreWrite.put), lease: lease)
        try await store.markSynced(generation: result.generation, serviceCount: sets.count, lease: lease)
        return lease
    }

    /// Reads the source in full into a fresh feed.
    private func read(_ store: any EndpointStore) async throws -> SourceFeed {
        var feed = SourceFeed(source: source)
        _ = feed.apply(try await store.snapshot(of: source))
        return feed
    }

    @Test(arguments: StoreKind.allCases)
    func publishAndReadBack(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "ingestor-1", ttl: .seconds(10)))
            let web = Fixtures.endpointSet("web", count: 5)
            let api = Fixtures.endpointSet("api", count: 2, octet: 2)
            let result = try await store.write([.put(web), .put(api)], lease: lease)
            #expect(result.outcomes == [.written(revision: 1), .written(revision: 2)])
            #expect(result.createdGeneration)
            try await store.markSynced(generation: result.generation, serviceCount: 2, lease: lease)

            #expect(try await store.sources() == [source])
            let feed = try await read(store)
            #expect(feed.services == [web.service: web, api.service: api])
            #expect(feed.isSynced)
            #expect(feed.revision == 3)
            #expect(try await store.storedHashes(source: source) == [web.service: web.contentHash, api.service: api.contentHash])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func unchangedContentIsNotWrittenAgain(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let web = Fixtures.endpointSet("web")
            _ = try await store.write([.put(web)], lease: lease)
            let again = try await store.write([.put(web), .delete(Fixtures.service("absent"))], lease: lease)
            #expect(again.outcomes == [.unchanged, .unchanged])
            #expect(!again.createdGeneration)
            let changes = try await store.changes(after: [source: .start], limit: 100, wait: nil)
            #expect(changes[source]?.count == 1)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func deletionReachesASyncedReader(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let web = Fixtures.endpointSet("web")
            let api = Fixtures.endpointSet("api")
            let lease = try await publishSynced([web, api], to: store)
            var feed = try await read(store)

            _ = try await store.write([.delete(web.service)], lease: lease)
            let changes = try await store.changes(after: [source: feed.cursor], limit: 100, wait: nil)
            let outcome = feed.apply(try #require(changes[source]))
            #expect(outcome.resyncReason == nil)
            #expect(outcome.updates == [.remove(web.service)])
            #expect(feed.services.keys.sorted() == [api.service])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func readerResumesFromItsCursorAfterReconnecting(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let first = try await store.write([.put(Fixtures.endpointSet("web"))], lease: lease)
            try await store.markSynced(generation: first.generation, serviceCount: 1, lease: lease)
            var feed = try await read(store)

            // Drop every client connection: the store must reconnect on its own.
            try? await harness.everywhere(["CLIENT", "KILL", "TYPE", "normal"])
            let web2 = Fixtures.endpointSet("web", count: 4)
            let api = Fixtures.endpointSet("api")
            var written = false
            for _ in 0..<20 where !written {  // the first command after the kill may meet the dead socket
                written = (try? await store.write([.put(web2), .put(api)], lease: lease)) != nil
            }
            #expect(written)
            let changes = try await store.changes(after: [source: feed.cursor], limit: 100, wait: nil)
            let outcome = feed.apply(try #require(changes[source]))
            #expect(outcome.resyncReason == nil)
            #expect(outcome.updates == [.upsert(web2), .upsert(api)])
            #expect(feed.revision == 4)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aTrimmedStreamIsAGapThatForcesAResync(_ kind: StoreKind) async throws {
        try await withHarness(kind, streamMaxLength: 10) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let first = try await store.write([.put(Fixtures.endpointSet("web"))], lease: lease)
            try await store.markSynced(generation: first.generation, serviceCount: 1, lease: lease)
            var feed = try await read(store)

            // Far more entries than the stream keeps (Redis trims whole nodes of 100 with MAXLEN ~).
            for round in 0..<30 {
                let sets = (0..<10).map { Fixtures.endpointSet("svc-\($0)", count: 1 + round % 3) }
                _ = try await store.write(sets.map(StoreWrite.put), lease: lease)
            }
            let changes = try await store.changes(after: [source: feed.cursor], limit: 1000, wait: nil)
            let outcome = feed.apply(try #require(changes[source]))
            #expect(outcome.resyncReason?.contains("gap") == true)

            _ = feed.apply(try await store.snapshot(of: source))
            #expect(feed.services.count == 11)
            #expect(feed.services[Fixtures.service("svc-3")] == Fixtures.endpointSet("svc-3", count: 1 + 29 % 3))
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aStaleEpochIsRefusedAtomically(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            // Under a 2 s lease (short enough to wait out): a holds it, b cannot take it, a writes. A loaded
            // machine can stall past the TTL between these calls (CI saw it: five 1 s attempts in a row
            // under the parallel pass, through Sentinel); an attempt the clock says stalled is judged by
            // nothing, undone and tried again.
            var held: Lease?
            for _ in 0..<8 {
                let asked = ContinuousClock.now
                guard let lease = try await store.acquireLease(source: source, holder: "ingestor-a", ttl: .seconds(2)) else {
                    try await Task.sleep(for: .milliseconds(2100))  // a lease of an undone attempt runs out
                    continue
                }
                let standby = try await store.acquireLease(source: source, holder: "ingestor-b", ttl: .seconds(10))
                let wrote = (try? await store.write([.put(Fixtures.endpointSet("web"))], lease: lease)) != nil
                if ContinuousClock.now - asked < .milliseconds(1500) {
                    #expect(standby == nil)
                    #expect(wrote)
                    held = lease
                    break
                }
                if let standby { try await store.releaseLease(standby) }
            }
            let old = try #require(held, "eight attempts stalled past a 2 s lease")

            try await Task.sleep(for: .milliseconds(2200))  // the lease expires; the standby takes over
            let new = try #require(try await store.acquireLease(source: source, holder: "ingestor-b", ttl: .seconds(10)))
            #expect(new.epoch > old.epoch)
            #expect(try await store.renewLease(old, ttl: .seconds(10)) == false)

            await #expect(throws: StoreError.self) {
                try await store.write([.put(Fixtures.endpointSet("web", count: 9)), .put(Fixtures.endpointSet("evil"))], lease: old)
            }
            do {
                _ = try await store.write([.put(Fixtures.endpointSet("evil"))], lease: old)
                Issue.record("a stale epoch wrote")
            } catch let error as StoreError {
                #expect(error.code == .staleEpoch)
            }
            await #expect(throws: StoreError.self) { try await store.heartbeat(lease: old, ttl: .seconds(1)) }
            await #expect(throws: StoreError.self) { try await store.markSynced(generation: "x", serviceCount: 0, lease: old) }

            let feed = try await read(store)
            #expect(feed.services.keys.map(\.name) == ["web"])
            #expect(feed.services.values.first?.endpoints.count == 3)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func releasedLeaseIsTakenAtOnceAndRenewalKeepsIt(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let ttl = Duration.seconds(2)
            // Renewing every 600 ms keeps a 2 s lease well past its first expiry. A test machine can stall
            // longer than the TTL (CPU-bound suites share two cores), before a request leaves or after it
            // was sent; then the lease has really expired and renewal must say so. Each step is judged
            // by what the times bound: a renewal runs somewhere between its send and its reply, and the
            // lease it extends expires no earlier than TTL after the last renewal was sent, no later than
            // TTL after that renewal's reply.
            var (lastSent, lastReplied) = (ContinuousClock.now, ContinuousClock.now)
            var lease = try #require(try await store.acquireLease(source: source, holder: "a", ttl: ttl))
            lastReplied = ContinuousClock.now
            var renewalsWithinTTL = 0
            let margin = Duration.milliseconds(300)
            for _ in 0..<40 where renewalsWithinTTL < 4 {
                try await Task.sleep(for: .milliseconds(600))
                let sentAt = ContinuousClock.now
                let renewed = try await store.renewLease(lease, ttl: ttl)
                let repliedAt = ContinuousClock.now
                if repliedAt - lastSent < ttl - margin {
                    #expect(
                        renewed,
                        "renewed (sent \(sentAt - lastSent), answered \(repliedAt - lastSent) after the last renewal was sent) of a \(ttl) lease"
                    )
                    renewalsWithinTTL += 1
                } else if sentAt - lastReplied > ttl + margin {
                    #expect(!renewed, "a lease renewed \(sentAt - lastReplied) after its last renewal was answered, past its \(ttl) TTL")
                }
                (lastSent, lastReplied) = (sentAt, repliedAt)
                if !renewed {
                    lastSent = ContinuousClock.now
                    let again = try #require(try await store.acquireLease(source: source, holder: "a", ttl: ttl))
                    lastReplied = ContinuousClock.now
                    #expect(again.epoch > lease.epoch)
                    lease = again
                }
            }
            #expect(renewalsWithinTTL == 4)
            let taken = try await store.acquireLease(source: source, holder: "b", ttl: .seconds(1))
            let reacquired = try await store.acquireLease(source: source, holder: "a", ttl: .seconds(1))
            if ContinuousClock.now - lastSent < ttl - margin {
                #expect(taken == nil)
                #expect(reacquired?.epoch == lease.epoch)
            }
            if let reacquired { lease = reacquired }
            try await store.releaseLease(lease)
            let b = try #require(try await store.acquireLease(source: source, holder: "b", ttl: .seconds(1)))
            #expect(b.epoch > lease.epoch)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func noDeletionIsTrustedUntilTheCanaryIsBack(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            var lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let web = Fixtures.endpointSet("web")
            let api = Fixtures.endpointSet("api")
            let first = try await store.write([.put(web), .put(api)], lease: lease)
            try await store.markSynced(generation: first.generation, serviceCount: 2, lease: lease)
            var feed = try await read(store)
            #expect(feed.services.count == 2)

            try await harness.loseAllData()
            let empty = feed.apply(try await store.snapshot(of: source))
            #expect(empty.updates.isEmpty, "lost data must not delete endpoints")
            #expect(feed.services.count == 2)

            // The writer notices (no epoch → re-acquire; a new generation) and republishes.
            await #expect(throws: StoreError.self) { try await store.write([.put(web)], lease: lease) }
            lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let again = try await store.write([.put(web)], lease: lease)
            #expect(again.createdGeneration)
            #expect(again.generation != first.generation)

            let partial = try await store.changes(after: [source: feed.cursor], limit: 100, wait: nil)
            let outcome = feed.apply(partial[source] ?? [])
            #expect(outcome.resyncReason != nil)
            _ = feed.apply(try await store.snapshot(of: source))
            #expect(feed.services.count == 2, "api stays until the canary says the listing is complete")

            await #expect(throws: StoreError.self) {
                try await store.markSynced(generation: first.generation, serviceCount: 1, lease: lease)
            }
            try await store.markSynced(generation: again.generation, serviceCount: 1, lease: lease)
            let synced = try await store.changes(after: [source: feed.cursor], limit: 100, wait: nil)
            #expect(feed.apply(synced[source] ?? []).resyncReason != nil)
            let settled = feed.apply(try await store.snapshot(of: source))
            #expect(settled.updates == [.remove(api.service)])
            #expect(feed.services.keys.sorted() == [web.service])
        }
    }

    @Test(arguments: StoreKind.allCases)
    func heartbeatExpires(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            // A loaded machine can stall past the 1 s TTL between the heartbeat and the snapshot (CI saw
            // it); an attempt the clock says took that long is judged by nothing and tried again.
            var judged = false
            for _ in 0..<5 {
                let asked = ContinuousClock.now
                try await store.heartbeat(lease: lease, ttl: .seconds(1))
                let alive = try await store.snapshot(of: source).heartbeat
                guard ContinuousClock.now - asked < .milliseconds(700) else { continue }
                let heartbeat = try #require(alive)
                #expect(heartbeat.holder == "i")
                #expect(heartbeat.epoch == lease.epoch)
                #expect(heartbeat.remainingMilliseconds > 0 && heartbeat.remainingMilliseconds <= 1000)
                judged = true
                break
            }
            #expect(judged, "five attempts stalled past a 1 s heartbeat")
            try await Task.sleep(for: .milliseconds(1300))
            #expect(try await store.snapshot(of: source).heartbeat == nil)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func badRecordsAreRejectedAndTheLastGoodStateIsKept(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let web = Fixtures.endpointSet("web")
            let lease = try await publishSynced([web], to: store)
            var feed = try await read(store)

            let good: [UInt8] = try web.record(epoch: lease.epoch, publishedAtUnixMilliseconds: 0).serializedBytes()
            var future = web.record(epoch: lease.epoch, publishedAtUnixMilliseconds: 0)
            future.schemaVersion = .UNRECOGNIZED(7)
            var lying = web.record(epoch: lease.epoch, publishedAtUnixMilliseconds: 0)
            lying.contentHash ^= 1
            let damaged: [(String, [UInt8])] = [
                ("truncated", Array(good.prefix(good.count / 2))),
                ("garbage", [0xFF, 0xFE, 0x00, 0x13, 0x37, 0xFF]),
                ("lying hash", try lying.serializedBytes()),
                ("future schema", try future.serializedBytes())
            ]
            for (label, bytes) in damaged {
                try await harness.storeUnvalidated(source: source, field: "default/web", bytes: bytes)
                let changes = try await store.changes(after: [source: feed.cursor], limit: 10, wait: nil)
                let outcome = feed.apply(try #require(changes[source]))
                #expect(outcome.rejections.count == 1, "\(label)")
                #expect(outcome.updates.isEmpty, "\(label)")
                #expect(feed.services[web.service] == web, "\(label): last good state kept")
                if label == "future schema" { #expect(outcome.resyncReason != nil) }
            }
            let full = feed.apply(try await store.snapshot(of: source))
            #expect(full.rejections.count == 1)
            #expect(feed.services[web.service] == web)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func removingASourceDrainsItAndFencesItsWriter(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try await publishSynced([Fixtures.endpointSet("web")], to: store)
            var feed = try await read(store)

            try await store.removeSource(source)
            #expect(try await store.sources().isEmpty)
            let changes = try await store.changes(after: [source: feed.cursor], limit: 10, wait: nil)
            #expect(feed.apply(changes[source] ?? []).resyncReason == "source removed")
            let drained = feed.apply(try await store.snapshot(of: source))
            #expect(drained.updates == [.remove(Fixtures.service("web"))])
            #expect(feed.isRemoved)
            await #expect(throws: StoreError.self) { try await store.write([.put(Fixtures.endpointSet("web"))], lease: lease) }
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aWaitingReaderWakesOnAWrite(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            _ = try await store.write([], lease: lease)
            let cursor = try await store.snapshot(of: source).cursor
            let started = ContinuousClock.now
            // A long wait, so that waking on the write (not the timeout) is plain even on a loaded machine.
            async let waited = store.changes(after: [source: cursor], limit: 10, wait: .seconds(30))
            try await Task.sleep(for: .milliseconds(50))
            _ = try await store.write([.put(Fixtures.endpointSet("web"))], lease: lease)
            let changes = try await waited
            #expect(changes[source]?.count == 1)
            #expect(ContinuousClock.now - started < .seconds(15))

            let idle = try await store.changes(after: [source: changes[source]![0].cursor], limit: 10, wait: .milliseconds(100))
            #expect(idle.isEmpty)
        }
    }

    /// Sources live in different slots (under Redis Cluster, on different shards): a reader waiting on
    /// several wakes for a write to any of them, and a later wait still sees the others.
    @Test(arguments: StoreKind.allCases)
    func aReaderWaitingOnSeveralSourcesWakesForAnyOfThem(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let sources = (0..<4).map { Fixtures.source("source-\($0)") }
            var leases: [Lease] = []
            var cursors: [SourceCluster: StreamCursor] = [:]
            for source in sources {
                let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
                _ = try await store.write([], lease: lease)
                leases.append(lease)
                cursors[source] = try await store.snapshot(of: source).cursor
            }
            for (offset, lease) in leases.enumerated().reversed() {
                let started = ContinuousClock.now
                let waitingFrom = cursors
                async let waited = store.changes(after: waitingFrom, limit: 10, wait: .seconds(30))
                try await Task.sleep(for: .milliseconds(50))
                _ = try await store.write([.put(Fixtures.endpointSet("web-\(offset)", source: lease.source))], lease: lease)
                let changes = try await waited
                #expect(Array(changes.keys) == [lease.source], "woken by \(lease.source)")
                #expect(ContinuousClock.now - started < .seconds(15))
                cursors[lease.source] = try #require(changes[lease.source]?.last?.cursor)
            }
            let idle = try await store.changes(after: cursors, limit: 10, wait: .milliseconds(200))
            #expect(idle.isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aChangedFailoverOrderIsWrittenAndTheSameIsNot(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let plain = Fixtures.endpointSet("web")
            func with(_ policy: FailoverPolicy?) throws -> EndpointSet {
                try EndpointSet(
                    source: plain.source, service: plain.service, ports: plain.ports, endpoints: plain.endpoints, failover: policy)
            }
            let zoneFirst = try with(try FailoverPolicy(parsing: "zone,cluster"))
            #expect(try await store.write([.put(plain)], lease: lease).outcomes.count == 1)
            let changed = try await store.write([.put(zoneFirst)], lease: lease)
            #expect(changed.outcomes == [.written(revision: 2)], "same endpoints, another order: written")
            #expect(try await store.write([.put(zoneFirst)], lease: lease).outcomes == [.unchanged])
            #expect(try await store.storedHashes(source: source) == [plain.service: zoneFirst.versionHash])
            var feed = SourceFeed(source: source)
            _ = feed.apply(try await store.snapshot(of: source))
            #expect(feed.services[plain.service]?.failover == zoneFirst.failover)
        }
    }

    /// A writer reconciling after a reconnect marks synced again: with nothing changed, that writes
    /// nothing; a new writer (a larger epoch) marks anew.
    @Test(arguments: StoreKind.allCases)
    func markingSyncedAgainChangesNothingUntilTheWriterChanges(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try await publishSynced([Fixtures.endpointSet("web")], to: store)
            let before = try await store.snapshot(of: source)
            let generation = try #require(before.generation)
            try await store.markSynced(generation: generation, serviceCount: 1, lease: lease)
            let again = try await store.snapshot(of: source)
            #expect(again.revision == before.revision)
            #expect(again.cursor == before.cursor, "no stream entry")
            #expect(again.canary == before.canary)

            try await store.releaseLease(lease)
            let next = try #require(try await store.acquireLease(source: source, holder: "j", ttl: .seconds(10)))
            try await store.markSynced(generation: generation, serviceCount: 1, lease: next)
            let renewed = try await store.snapshot(of: source)
            #expect(renewed.revision == before.revision + 1)
            #expect(renewed.canary?.holder == "j")
        }
    }

    @Test(arguments: StoreKind.allCases)
    func aSetOfAnotherSourceIsRefusedWhole(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let foreign = Fixtures.endpointSet("web", source: Fixtures.source("cluster-b"))
            await #expect(throws: StoreError.self) {
                try await store.write([.put(Fixtures.endpointSet("api")), .put(foreign)], lease: lease)
            }
            #expect(try await store.snapshot(of: source).records.isEmpty)
        }
    }

    @Test(arguments: StoreKind.allCases)
    func anEmptySourceCanBeMarkedSynced(_ kind: StoreKind) async throws {
        try await withHarness(kind) { harness in
            let store = harness.store
            let lease = try #require(try await store.acquireLease(source: source, holder: "i", ttl: .seconds(10)))
            let result = try await store.write([], lease: lease)
            try await store.markSynced(generation: result.generation, serviceCount: 0, lease: lease)
            let snapshot = try await store.snapshot(of: source)
            #expect(snapshot.canary?.generation == result.generation)
            #expect(snapshot.canary?.serviceCount == 0)
            #expect(snapshot.records.isEmpty)
        }
    }
}
