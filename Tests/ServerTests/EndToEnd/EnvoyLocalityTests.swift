import AsyncHTTPClient
import Foundation
import LegationTestSupport
import RedisStore
import Server
import Shared
import Testing

/// Priorities by locality with a real Envoy: two source clusters in two zones of one region (east in
/// us-east-1a, west in us-east-1b), a sidecar in us-east-1a. Its requests stay in its zone; as its
/// zone's pods drain or turn unhealthy, Envoy spills to the next priority (west), and comes back when
/// they recover. Prints the figures (`locality: ...`).
@Suite(.serialized, .timeLimit(.minutes(4)))
struct EnvoyLocalityTests {
    typealias E2E = EnvoyEndToEndTests

    static func report(_ what: String, _ value: String) {
        print("locality: \(what): \(value)")
    }

    /// The share of `answers` that came from east's pods (the sidecar's zone).
    static func localShare(_ answers: [String: Int]) -> Double {
        let total = answers.values.reduce(0, +)
        return total == 0 ? 0 : Double(answers.filter { $0.key.hasPrefix("east") }.values.reduce(0, +)) / Double(total)
    }

    /// Envoy's view of the echo cluster: address → (EDS health, priority).
    static func hostPriorities(_ envoy: EnvoyProcess) async -> [String: Int] {
        guard let (_, body) = try? await E2E.get("http://127.0.0.1:\(envoy.adminPort)/clusters?format=json"),
            let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
            let statuses = json["cluster_statuses"] as? [[String: Any]],
            let echo = statuses.first(where: { $0["name"] as? String == E2E.cluster })
        else { return [:] }
        var result: [String: Int] = [:]
        for host in echo["host_statuses"] as? [[String: Any]] ?? [] {
            guard let address = ((host["address"] as? [String: Any])?["socket_address"] as? [String: Any])?["address"] as? String else {
                continue
            }
            result[address] = host["priority"] as? Int ?? 0
        }
        return result
    }

    /// Sends requests until `count` in a row come from west; - Returns: how long after `start` the first
    /// of them was sent, or nil after 15 s.
    static func timeUntilWestOnly(_ envoy: EnvoyProcess, since start: ContinuousClock.Instant, count: Int = 5) async -> Duration? {
        var firstOfRun: ContinuousClock.Instant?
        var run = 0
        while ContinuousClock.now - start < .seconds(15) {
            let sent = ContinuousClock.now
            if let (status, body) = try? await E2E.get("http://127.0.0.1:\(envoy.listenerPort)/"), status == 200, body.hasPrefix("west") {
                if run == 0 { firstOfRun = sent }
                run += 1
                if run == count { return firstOfRun.map { $0 - start } }
            } else {
                run = 0
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    @Test(arguments: [false, true])
    func trafficStaysInTheClientsZoneAndFailsOverByPriority(delta: Bool) async throws {
        guard let binary = EnvoyProcess.binary else {
            Issue.record("envoy is not installed: run scripts/install-deps.sh --e2e")
            return
        }
        let mode = delta ? "delta" : "sotw"
        let directory = try TemporaryDirectory(prefix: "legation-locality")
        defer { directory.remove() }
        let redis = try await RedisServer()
        let store = RedisEndpointStore(try redis.configuration(), logger: .quiet())
        let podPort = try freeLoopbackPort()
        var upstreams: [NamedHTTPServer] = []
        for (name, host) in [("east-0", "127.0.0.2"), ("east-1", "127.0.0.3"), ("west-0", "127.0.0.4"), ("west-1", "127.0.0.5")] {
            upstreams.append(try await NamedHTTPServer.start(name: name, host: host, port: podPort))
        }
        let east = try await E2E.SourceRig(name: "east", store: store)
        let west = try await E2E.SourceRig(name: "west", store: store)
        func eastPods(ready: Bool, serving: Bool, terminating: Bool, both: Bool = true) throws {
            let changed = (ready, serving, terminating)
            let first = changed
            let second = both ? changed : (true, true, false)
            try east.publish(
                port: podPort, pods: [("127.0.0.2", first.0, first.1, first.2), ("127.0.0.3", second.0, second.1, second.2)],
                zone: "us-east-1a")
        }
        try eastPods(ready: true, serving: true, terminating: false)
        try west.publish(port: podPort, pods: [("127.0.0.4", true, true, false), ("127.0.0.5", true, true, false)], zone: "us-east-1b")

        // Not-serving pods stay in the assignment as UNHEALTHY (so the spill is Envoy's priority logic,
        // not their absence).
        let replica = try await E2E.startReplica(store, identifier: "locality") { $0.pipeline.resources.keepUnservingEndpoints = true }
        #expect(await eventually(within: .seconds(20)) { replica.runtime.hub.notReadyReason == nil })
        let adminPort = try freeLoopbackPort()
        let listenerPort = try freeLoopbackPort()
        var bootstrap = EnvoyBootstrap(
            nodeID: "sidecar-locality", zone: "us-east-1a", xdsServers: [("127.0.0.1", replica.port)], adminPort: adminPort,
            listener: (listenerPort, E2E.cluster), delta: delta)
        bootstrap.sourceCluster = "east"
        let envoy = try EnvoyProcess(
            binary: binary, bootstrap: bootstrap.yaml, adminPort: adminPort, listenerPort: listenerPort, directory: directory)
        defer { Task { [envoy] in await envoy.stop() } }

        // 1. Every request stays in the sidecar's zone; west is Envoy's priority 1.
        guard await eventually(within: .seconds(30), { await Self.hostPriorities(envoy).count == 4 }) else {
            Issue.record("Envoy did not get all four pods within 30 s; its log ends with:\n\(envoy.log.suffix(3000))")
            return
        }
        #expect(await Self.hostPriorities(envoy) == ["127.0.0.2": 0, "127.0.0.3": 0, "127.0.0.4": 1, "127.0.0.5": 1])
        let steady = await E2E.answers(envoy, count: 200)
        Self.report(
            "\(mode) local share, zone healthy", String(format: "%.3f of %d requests", Self.localShare(steady), steady.values.reduce(0, +)))
        #expect(Self.localShare(steady) == 1, "\(steady)")
        #expect(Set(steady.keys) == ["east-0", "east-1"])

        // Each failure starts from a healthy zone: Envoy decides whether a host is excluded from its
        // priority's health when the host leaves HEALTHY (a DRAINING host that turns UNHEALTHY stays
        // excluded; an UNHEALTHY one that turns DRAINING stays counted).

        // 2. Half the zone unhealthy: priority 0 is 50 % healthy, so Envoy keeps 50 % × 1.4 = 70 % there.
        try eastPods(ready: false, serving: false, terminating: false, both: false)
        #expect(await eventually(within: .seconds(10)) { await E2E.envoyHosts(envoy)["127.0.0.2"] == "UNHEALTHY" })
        let half = await E2E.answers(envoy, count: 400)
        Self.report(
            "\(mode) local share, half the zone unhealthy",
            String(format: "%.3f of %d requests (Envoy's expectation: 0.70)", Self.localShare(half), half.values.reduce(0, +)))
        #expect((0.55...0.85).contains(Self.localShare(half)), "\(half)")
        #expect(half["east-0"] == nil, "no requests to the unhealthy pod")
        try eastPods(ready: true, serving: true, terminating: false)
        #expect(await eventually(within: .seconds(10)) { Self.localShare(await E2E.answers(envoy, count: 20)) == 1 })

        // Half the zone draining: Envoy leaves DRAINING hosts out of a priority's health (excluded,
        // neither healthy nor not), so the zone's other pod takes all of its traffic.
        try eastPods(ready: false, serving: true, terminating: true, both: false)
        #expect(await eventually(within: .seconds(10)) { await E2E.envoyHosts(envoy)["127.0.0.2"] == "DRAINING" })
        let draining = await E2E.answers(envoy, count: 200)
        Self.report(
            "\(mode) local share, half the zone draining",
            String(format: "%.3f of %d requests", Self.localShare(draining), draining.values.reduce(0, +)))
        #expect(draining == ["east-1": 200], "no new requests to the draining pod, none leave the zone")
        try eastPods(ready: true, serving: true, terminating: false)
        #expect(await eventually(within: .seconds(10)) { await E2E.envoyHosts(envoy)["127.0.0.2"] == "HEALTHY" })

        // 3. The whole zone draining: everything moves to west.
        let drained = ContinuousClock.now
        try eastPods(ready: false, serving: true, terminating: true)
        let drainFailover = await Self.timeUntilWestOnly(envoy, since: drained)
        Self.report(
            "\(mode) zone draining → traffic on the next priority",
            drainFailover.map { "\($0.formatted(.units(allowed: [.milliseconds])))" } ?? "never")
        #expect(drainFailover != nil)
        let away = await E2E.answers(envoy, count: 100)
        #expect(Set(away.keys) == ["west-0", "west-1"], "\(away)")

        // 4. The zone recovers: traffic comes back.
        try eastPods(ready: true, serving: true, terminating: false)
        #expect(await eventually(within: .seconds(10)) { Self.localShare(await E2E.answers(envoy, count: 20)) == 1 })

        // 5. The zone's pods turn unready (UNHEALTHY): the same failover, and back.
        let failed = ContinuousClock.now
        try eastPods(ready: false, serving: false, terminating: false)
        let unhealthyFailover = await Self.timeUntilWestOnly(envoy, since: failed)
        Self.report(
            "\(mode) zone unhealthy → traffic on the next priority",
            unhealthyFailover.map { "\($0.formatted(.units(allowed: [.milliseconds])))" } ?? "never")
        #expect(unhealthyFailover != nil)
        #expect(await E2E.envoyHosts(envoy)["127.0.0.2"] == "UNHEALTHY")
        try eastPods(ready: true, serving: true, terminating: false)
        #expect(await eventually(within: .seconds(10)) { Self.localShare(await E2E.answers(envoy, count: 20)) == 1 })
        let back = await E2E.answers(envoy, count: 200)
        Self.report(
            "\(mode) local share, zone recovered", String(format: "%.3f of %d requests", Self.localShare(back), back.values.reduce(0, +)))
        #expect(Self.localShare(back) == 1)

        // Envoy refused nothing.
        let rejected = await E2E.envoyStat(envoy, "update_rejected")
        #expect(!rejected.isEmpty && rejected.values.allSatisfy { $0 == 0 }, "\(rejected)")

        await envoy.stop()
        replica.task.cancel()
        await east.stop()
        await west.stop()
        for upstream in upstreams { await upstream.close() }
        await store.close()
        redis.kill()
    }
}
