import LegationTestSupport
import Logging
import RedisStore
import Shared
import Synchronization
import Testing

@testable import Ingestor

@Suite(.timeLimit(.minutes(1)))
struct EndpointPublisherTests {
    let source = try! SourceCluster("cluster-a")

    func set(_ name: String, count: Int = 2) -> EndpointSet {
        let port = try! ServicePort(name: "http", port: 80)
        let endpoints = (0..<count).map { try! Endpoint(address: "10.0.\(name.count).\($0 + 1)", targetPorts: [8080]) }
        return try! EndpointSet(
            source: source, service: try! ServiceKey(namespace: "default", name: name), ports: [port], endpoints: endpoints)
    }

    func fastOptions() -> EndpointPublisher.Options {
        var options = EndpointPublisher.Options()
        options.leaseTTL = .seconds(1)
        options.heartbeatInterval = .milliseconds(200)
        options.retryInitialDelay = .milliseconds(10)
        options.retryMaximumDelay = .milliseconds(50)
        return options
    }

    func stored(_ store: InMemoryEndpointStore) async -> [ServiceKey: EndpointSet] {
        var feed = SourceFeed(source: source)
        _ = feed.apply(await store.snapshot(of: source))
        return feed.services
    }

    @Test func publishesTheInitialListThenTheCanaryThenChanges() async throws {
        let store = InMemoryEndpointStore()
        let publisher = EndpointPublisher(store: store, source: source, holder: "a", options: fastOptions(), logger: .quiet())
        let task = Task { await publisher.run() }
        defer { task.cancel() }

        await publisher.upsert(set("early"))  // before the list: held until the list is complete
        try await Task.sleep(for: .milliseconds(50))
        #expect(await store.snapshot(of: source).records.isEmpty)

        await publisher.replaceAll([set("web"), set("api")])
        #expect(await eventually { await store.snapshot(of: source).canary != nil })
        #expect(await stored(store).keys.map(\.name).sorted() == ["api", "web"])
        #expect(await publisher.status.isSynced)

        await publisher.upsert(set("web", count: 5))
        await publisher.remove(try ServiceKey(namespace: "default", name: "api"))
        #expect(await eventually { await stored(store).count == 1 })
        #expect(await stored(store).values.first?.endpoints.count == 5)
        #expect(await eventually { await store.snapshot(of: source).heartbeat != nil })
    }

    /// The changes of one watch read, handed over together, leave in one write (not one per event).
    @Test func changesHandedOverTogetherLeaveInOneWrite() async throws {
        let store = InMemoryEndpointStore()
        // A lease that cannot lapse on a loaded machine: a retaken lease reconciles instead of flushing.
        var options = fastOptions()
        options.leaseTTL = .seconds(60)
        let flushes = Mutex<[[String]]>([])
        let publisher = EndpointPublisher(store: store, source: source, holder: "a", options: options, logger: .quiet()) {
            acknowledgment, _ in
            flushes.withLock { $0.append(acknowledgment.services.map(\.name)) }
        }
        let task = Task { await publisher.run() }
        defer { task.cancel() }
        await publisher.replaceAll([set("web"), set("api")])
        #expect(await eventually { await publisher.status.isSynced })

        let last = await publisher.apply([
            .upsert(set("web", count: 3)), .upsert(set("db")), .upsert(set("cache")),
            .remove(try ServiceKey(namespace: "default", name: "api")), .upsert(set("db"))  // the same again: no change
        ])
        #expect(last != nil)
        #expect(await eventually { await stored(store).keys.map(\.name).sorted() == ["cache", "db", "web"] })
        #expect(flushes.withLock { $0 } == [["api", "cache", "db", "web"]])
        #expect(await publisher.status.pendingWrites == 0)
    }

    /// While the source does not answer, heartbeats stop (readers flag it stale) but what was published
    /// stays; the heartbeat is back as soon as the source answers.
    @Test func anUnreachableSourceWithholdsHeartbeatsAndKeepsItsEndpoints() async throws {
        let store = InMemoryEndpointStore()
        // Heartbeats that live 1.5 s and a lease that cannot lapse: with 600 ms heartbeats and a 1 s lease
        // the first heartbeat was not seen within 5 s once, on a loaded CI machine.
        var options = fastOptions()
        options.heartbeatInterval = .milliseconds(500)
        options.leaseTTL = .seconds(60)
        let publisher = EndpointPublisher(store: store, source: source, holder: "a", options: options, logger: .quiet())
        let task = Task { await publisher.run() }
        defer { task.cancel() }
        await publisher.replaceAll([set("web")])
        #expect(await eventually(within: .seconds(5)) { await store.heartbeats(of: [source])[source] != nil })

        await publisher.sourceReachable(false)
        #expect(await publisher.status.isSourceReachable == false)
        // Three 500 ms intervals: the last heartbeat expires and none replaces it.
        #expect(await eventually(within: .seconds(8)) { await store.heartbeats(of: [source])[source] == nil })
        try await Task.sleep(for: .milliseconds(1000))
        #expect(await store.heartbeats(of: [source])[source] == nil)
        #expect(await stored(store).keys.map(\.name) == ["web"])
        #expect(await publisher.status.isLeader)

        await publisher.sourceReachable(true)
        #expect(await eventually(within: .seconds(5)) { await store.heartbeats(of: [source])[source] != nil })
    }

    @Test func aStandbyTakesOverAndTheDeposedWriterCannotWrite() async throws {
        let store = InMemoryEndpointStore()
        let cut = PartitionedStore(store)
        // A 3 s lease (renewed every second): a loaded CI machine can stall a task past a 1 s one.
        var options = fastOptions()
        options.leaseTTL = .seconds(3)
        let first = EndpointPublisher(store: cut, source: source, holder: "first", options: options, logger: .quiet())
        let second = EndpointPublisher(store: store, source: source, holder: "second", options: options, logger: .quiet())
        await first.replaceAll([set("web")])
        await second.replaceAll([set("web")])
        let firstTask = Task { await first.run() }
        defer { firstTask.cancel() }
        #expect(await eventually { await first.status.isSynced })
        let secondTask = Task { await second.run() }
        defer { secondTask.cancel() }
        try await Task.sleep(for: .milliseconds(1500))
        #expect(await !second.status.isLeader, "the standby waits while the lease is renewed")

        cut.setPartitioned(true)  // the first writer is cut off from Redis: its lease runs out
        #expect(await eventually { await second.status.isSynced })
        #expect(await eventually { await !first.status.isLeader }, "the cut-off writer steps down by its own clock")
        #expect(await stored(store).count == 1, "no endpoint removed during the takeover")

        await first.upsert(set("web", count: 7))  // the deposed writer has news, and comes back
        cut.setPartitioned(false)
        // Its first store call that succeeds after the partition clears its last error.
        #expect(await eventually { await first.status.lastError == nil }, "the deposed writer reaches the store again")
        #expect(await stored(store).values.first?.endpoints.count == 2, "a deposed writer cannot write")
        #expect(await !first.status.isLeader)
        #expect(await second.status.isLeader)
    }

    @Test func lostStoreDataIsRepublishedWithANewCanary() async throws {
        let redis = try await RedisServer()
        let store = RedisEndpointStore(try redis.configuration(), logger: .quiet())
        let publisher = EndpointPublisher(store: store, source: source, holder: "a", options: fastOptions(), logger: .quiet())
        await publisher.replaceAll([set("web"), set("api"), set("db")])
        let task = Task { await publisher.run() }
        defer { task.cancel() }
        #expect(await eventually { (try? await store.snapshot(of: source).canary) != nil })
        let before = try await store.snapshot(of: source).generation

        _ = try await store.client.send(["FLUSHALL"], key: nil, timeout: nil)
        #expect(await eventually { (try? await store.snapshot(of: source).canary) != nil })
        var feed = SourceFeed(source: source)
        _ = feed.apply(try await store.snapshot(of: source))
        #expect(feed.services.count == 3)
        #expect(try await store.snapshot(of: source).generation != before)
        task.cancel()
        await task.value
        await store.close()
    }

    @Test func shutdownReleasesTheLeaseForAnImmediateTakeover() async throws {
        let store = InMemoryEndpointStore()
        let publisher = EndpointPublisher(store: store, source: source, holder: "a", options: fastOptions(), logger: .quiet())
        await publisher.replaceAll([set("web")])
        let task = Task { await publisher.run() }
        #expect(await eventually { await publisher.status.isSynced })
        task.cancel()
        await task.value
        #expect(await store.acquireLease(source: source, holder: "b", ttl: .seconds(10)) != nil)
    }
}
