import LegationTestSupport
import Logging
import MetricsTestKit
import Shared
import Synchronization
import Testing

/// The follower shell over a real store: deliveries, rejections counted, and no deletions while the
/// store is away.
@Suite(.timeLimit(.minutes(1)))
struct StoreFollowerTests {
    /// What the follower delivered, merged per source.
    final class Collected: Sendable {
        let state = Mutex<[SourceCluster: [ServiceKey: EndpointSet]]>([:])
        let deliveries = Mutex(0)

        func apply(_ delivery: StoreFollower.Delivery) {
            deliveries.withLock { $0 += 1 }
            state.withLock { state in
                for update in delivery.updates {
                    switch update {
                    case .upsert(let set): state[delivery.source, default: [:]][set.service] = set
                    case .remove(let key): state[delivery.source]?[key] = nil
                    }
                }
            }
        }

        func services(_ source: SourceCluster) -> [ServiceKey: EndpointSet] { state.withLock { $0[source] ?? [:] } }
    }

    private func eventually(_ what: String, within: Duration = .seconds(15), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + within
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("not within \(within): \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test(arguments: [StoreKind.memory, .redis])
    func followsDiscoversCountsRejectionsAndKeepsStateWhileRedisIsAway(_ kind: StoreKind) async throws {
        let harness = try await StoreHarness.make(kind)
        let metrics = TestMetrics()
        let collected = Collected()
        var options = StoreFollower.Options()
        options.discoveryInterval = .milliseconds(50)
        options.pollWait = .milliseconds(100)
        options.retryMaximumDelay = .milliseconds(100)
        let follower = StoreFollower(reader: harness.store, options: options, logger: .quiet(), metricsFactory: metrics) {
            collected.apply($0)
        }
        let task = Task { await follower.run() }
        defer { task.cancel() }

        let a = Fixtures.source("cluster-a")
        let b = Fixtures.source("cluster-b")
        let leaseA = try #require(try await harness.store.acquireLease(source: a, holder: "ia", ttl: .seconds(30)))
        let leaseB = try #require(try await harness.store.acquireLease(source: b, holder: "ib", ttl: .seconds(30)))
        let webA = Fixtures.endpointSet("web", source: a, count: 2, octet: 1)
        let webB = Fixtures.endpointSet("web", source: b, count: 3, octet: 2)
        let generation = try await harness.store.write([.put(webA)], lease: leaseA).generation
        try await harness.store.markSynced(generation: generation, serviceCount: 1, lease: leaseA)
        _ = try await harness.store.write([.put(webB)], lease: leaseB)
        try await eventually("both sources delivered") {
            collected.services(a)[webA.service] == webA && collected.services(b)[webB.service] == webB
        }

        // A damaged record: rejected, counted, last good state kept.
        try await harness.storeUnvalidated(source: a, field: "default/web", bytes: [0xde, 0xad])
        try await eventually("rejection counted") {
            (try? metrics.expectCounter("legation_store_records_rejected_total", [("source", "cluster-a"), ("reason", "badRecord")]))?
                .totalValue == 1
        }
        #expect(collected.services(a)[webA.service] == webA)

        // A change read from the stream records the reader's lag behind the writer.
        let webA1 = Fixtures.endpointSet("web", source: a, count: 3, octet: 1)
        _ = try await harness.store.write([.put(webA1)], lease: leaseA)
        try await eventually("lag recorded") {
            (try? metrics.expectTimer("legation_store_read_lag_seconds", [("source", "cluster-a")]))?.lastValue != nil
        }
        let lag = try metrics.expectTimer("legation_store_read_lag_seconds", [("source", "cluster-a")]).lastValue ?? .max
        #expect(lag < 10_000_000_000, "lag \(lag) ns")

        // The store goes away: nothing is delivered, nothing deleted; it comes back and changes flow.
        if let redis = harness.redis {
            redis.kill()
            try await eventually("read errors counted") {
                ((try? metrics.expectCounter("legation_store_read_errors_total"))?.totalValue ?? 0) >= 1
            }
            #expect(collected.services(a)[webA.service] == webA1)
            #expect(collected.services(b)[webB.service] == webB)
            try await redis.restart()  // empty: as after a crash without persistence
            try await Task.sleep(for: .milliseconds(300))
            #expect(collected.services(a)[webA.service] == webA1, "lost data deletes nothing")
            let again = try #require(try await harness.store.acquireLease(source: a, holder: "ia", ttl: .seconds(30)))
            let webA2 = Fixtures.endpointSet("web", source: a, count: 4, octet: 1)
            _ = try await harness.store.write([.put(webA2)], lease: again)
            try await eventually("republished set delivered") { collected.services(a)[webA.service] == webA2 }
        }
        await harness.shutdown()
    }

    /// Full reads overlap (a few at once) but are applied in source order, whichever answers first; a
    /// failed read keeps what was applied before it and is tried again; caught up comes once, after all.
    @Test func fullReadsOverlapButAreAppliedInOrder() async throws {
        let store = InMemoryEndpointStore()
        let sources = (0..<6).map { Fixtures.source("cluster-\($0)") }
        for source in sources {
            let lease = try #require(await store.acquireLease(source: source, holder: "i", ttl: .seconds(60)))
            let generation = try await store.write([.put(Fixtures.endpointSet("web", source: source))], lease: lease).generation
            try await store.markSynced(generation: generation, serviceCount: 1, lease: lease)
        }
        let failedOnce = Mutex(false)
        // The first sources answer last; cluster-4's first read fails.
        let reader = ScriptedReader(store) { source in
            let index = sources.firstIndex(of: source)!
            try await Task.sleep(for: .milliseconds(10 * (6 - index)))
            if index == 4,
                failedOnce.withLock({ flag in
                    defer { flag = true }
                    return !flag
                })
            {
                throw StoreError(.unavailable, "cluster-4 is away (test)")
            }
        }
        let order = Mutex<[SourceCluster]>([])
        let caughtUp = Mutex<(count: Int, deliveredBefore: Int)>((0, 0))
        var options = StoreFollower.Options()
        options.sources = Set(sources)
        options.discoverSources = false
        options.snapshotReadsInFlight = 3
        options.retryInitialDelay = .milliseconds(10)
        options.retryMaximumDelay = .milliseconds(20)
        let follower = StoreFollower(
            reader: reader, options: options, logger: .quiet(),
            caughtUp: { caughtUp.withLock { $0 = ($0.count + 1, order.withLock { $0.count }) } },
            deliver: { delivery in
                if delivery.fromSnapshot { order.withLock { $0.append(delivery.source) } }
            })
        let task = Task { await follower.run() }
        defer { task.cancel() }
        try await eventually("every source delivered") { order.withLock { $0.count } == 6 }
        #expect(order.withLock { $0 } == sources, "applied in order: cluster-0 to 3, then 4 and 5 after the retry")
        #expect((2...3).contains(reader.mostInFlight), "reads overlap, at most three at once: \(reader.mostInFlight)")
        #expect(reader.reads.filter { $0 == sources[4] }.count == 2)
        #expect(reader.reads.filter { $0 == sources[0] }.count == 1, "what was applied is not read again")
        try await eventually("caught up") { caughtUp.withLock { $0.count } == 1 }
        #expect(caughtUp.withLock { $0.deliveredBefore } == 6)
    }
}
