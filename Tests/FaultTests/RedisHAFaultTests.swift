import Foundation
import LegationTestSupport
import RedisStore
import Shared
import Testing

/// Redis high availability with the whole mesh running (docs/faults.md): the primary under Sentinel,
/// a Redis Cluster shard's primary, and a source's slot moved between shards, each while 100 sidecars
/// are connected and an endpoint changes. Nothing may be removed; afterwards exactly the real change
/// reaches every sidecar. Figures on `fault:` lines.
extension FaultTests {
    /// The time from `start` until `condition` holds (polled every 20 ms), or nil after `limit`.
    static func elapsed(since start: ContinuousClock.Instant, within limit: Duration, _ condition: () async -> Bool) async -> Duration? {
        while ContinuousClock.now - start < limit {
            if await condition() { return ContinuousClock.now - start }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    @Test func aSentinelFailoverLosesNothingAndPushesOnlyTheRealChange() async throws {
        var options = FaultRig.Options()
        options.redisTopology = .sentinel
        options.sidecars = Self.sidecars(100)
        options.replicas = 2
        try await Self.withRig(options) { rig in
            rig.startSidecars()
            let initial = try await rig.waitSteady()
            let sentinels = try #require(rig.sentinels)
            let clustersBefore = rig.clustersRemoved

            let killedAt = ContinuousClock.now
            let old = try await sentinels.killPrimary()
            try rig.setEndpoints("east", service: 0, addresses: rig.published["east"]![0]! + ["10.9.0.1"])
            let promoted = await Self.elapsed(since: killedAt, within: .seconds(30)) { await sentinels.isFailedOver(from: old) }
            let synced = await Self.elapsed(since: killedAt, within: .seconds(30)) { rig.unsyncedSidecars() == 0 }
            let pushed = rig.pushed(since: killedAt)
            // A writer that could not renew through the failover stepped down when its lease ran out by
            // its own clock (3 s here); it takes the lease again once Redis answers.
            let writersBack = await Self.elapsed(since: killedAt, within: .seconds(30)) {
                await rig.leaders().count == options.sources.count
            }
            let leaders = await rig.leaders()
            Self.report(
                "redis sentinel: primary killed",
                [
                    "sidecars": options.sidecars, "initial sync ms": initial.milliseconds,
                    "sentinels promoted a replica after ms": promoted.map { String($0.milliseconds) } ?? "never",
                    "change on every sidecar after kill ms": synced.map { String($0.milliseconds) } ?? "never",
                    "assignment changes pushed": pushed.changes, "endpoints removed": pushed.endpointsRemoved,
                    "clusters removed": rig.clustersRemoved - clustersBefore,
                    "every source had its writer again after ms": writersBack.map { String($0.milliseconds) } ?? "never",
                    "lease holders": leaders.joined(separator: " ")
                ])
            #expect(promoted != nil, "the sentinels did not fail over")
            #expect(synced != nil, "sidecars did not converge after the failover; \(rig.logs())")
            #expect(pushed.changes == options.sidecars, "exactly one change per sidecar: the endpoint added meanwhile")
            #expect(pushed.endpointsRemoved == 0)
            #expect(rig.clustersRemoved == clustersBefore)
            #expect(writersBack != nil, "every source has its writer again: \(leaders)")
            #expect(await rig.replicasReady())
        }
    }

    @Test func aClusterShardFailoverLosesNothingAndPushesOnlyTheRealChange() async throws {
        var options = FaultRig.Options()
        options.redisTopology = .cluster
        options.sidecars = Self.sidecars(100)
        options.replicas = 2
        try await Self.withRig(options) { rig in
            rig.startSidecars()
            let initial = try await rig.waitSteady()
            let cluster = try #require(rig.cluster)
            let slot = RedisClusterClient.slot(of: RedisKeys(try SourceCluster("east")).meta)
            let owner = try await cluster.owner(ofSlot: slot)
            let clustersBefore = rig.clustersRemoved

            let killedAt = ContinuousClock.now
            cluster.node(port: owner)?.kill()
            try rig.setEndpoints("east", service: 0, addresses: rig.published["east"]![0]! + ["10.9.0.1"])
            let promoted = await Self.elapsed(since: killedAt, within: .seconds(30)) {
                (try? await cluster.owner(ofSlot: slot)).map { $0 != owner } ?? false
            }
            let synced = await Self.elapsed(since: killedAt, within: .seconds(30)) { rig.unsyncedSidecars() == 0 }
            let pushed = rig.pushed(since: killedAt)
            Self.report(
                "redis cluster: the primary of east's shard killed",
                [
                    "sidecars": options.sidecars, "initial sync ms": initial.milliseconds,
                    "replica took the slot after ms": promoted.map { String($0.milliseconds) } ?? "never",
                    "change on every sidecar after kill ms": synced.map { String($0.milliseconds) } ?? "never",
                    "assignment changes pushed": pushed.changes, "endpoints removed": pushed.endpointsRemoved,
                    "clusters removed": rig.clustersRemoved - clustersBefore
                ])
            #expect(promoted != nil, "no replica took over the slot")
            #expect(synced != nil, "sidecars did not converge after the failover; \(rig.logs())")
            #expect(pushed.changes == options.sidecars, "exactly one change per sidecar: the endpoint added meanwhile")
            #expect(pushed.endpointsRemoved == 0)
            #expect(rig.clustersRemoved == clustersBefore)
            #expect(await rig.replicasReady())
        }
    }

    /// East's slot moves to another shard key by key (clients meet ASK, TRYAGAIN, then MOVED) while
    /// east keeps changing: every change arrives, nothing is removed.
    @Test func aSourcesSlotMigratingUnderChangesLosesNothing() async throws {
        var options = FaultRig.Options()
        options.redisTopology = .cluster
        options.sidecars = Self.sidecars(100)
        try await Self.withRig(options) { rig in
            rig.startSidecars()
            _ = try await rig.waitSteady()
            let cluster = try #require(rig.cluster)
            let slot = RedisClusterClient.slot(of: RedisKeys(try SourceCluster("east")).meta)
            let from = try await cluster.owner(ofSlot: slot)
            let to = try #require(await cluster.otherPrimaries(than: from).first)
            let started = ContinuousClock.now
            // Endpoints only added, so any removal a sidecar sees is a fault.
            let churn = Task {
                for round in 0..<40 where !Task.isCancelled {
                    let service = round % 5
                    try? rig.setEndpoints(
                        "east", service: service, addresses: rig.published["east"]![service]! + ["10.9.\(service).\(round + 1)"])
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            try await cluster.migrate(slot: slot, to: to, pause: .milliseconds(100))
            let migrated = ContinuousClock.now - started
            await churn.value
            let synced = await Self.elapsed(since: started, within: .seconds(40)) { rig.unsyncedSidecars() == 0 }
            let pushed = rig.pushed(since: started)
            var redirects = 0.0
            for admin in rig.replicaAdmins + (rig.ingestorAdmin("east-a").map { [$0] } ?? []) {
                redirects += await rig.metric(admin: admin, "legation_redis_cluster_redirects_total")
            }
            Self.report(
                "redis cluster: east's slot migrated under changes",
                [
                    "sidecars": options.sidecars, "migration ms": migrated.milliseconds, "changes": 40,
                    "every sidecar converged after ms": synced.map { String($0.milliseconds) } ?? "never",
                    "assignment changes pushed": pushed.changes, "endpoints removed": pushed.endpointsRemoved,
                    "redirects followed (ingestor and servers)": Int(redirects)
                ])
            #expect(try await cluster.owner(ofSlot: slot) == to)
            #expect(synced != nil, "sidecars did not converge; \(rig.logs())")
            #expect(pushed.endpointsRemoved == 0)
            #expect(redirects > 0, "the clients never met a redirect: the migration was not exercised")
        }
    }
}
