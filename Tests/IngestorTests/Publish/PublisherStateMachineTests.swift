import LegationTestSupport
import Shared
import Testing

@testable import Ingestor

/// The publisher's rules, driven with a clock in the test's hands: hours of leases, heartbeats and
/// retries in microseconds, no store.
@Suite struct PublisherStateMachineTests {
    let source = Fixtures.source("east")
    let start = ContinuousClock.now

    func options() -> PublisherStateMachine.Options {
        var options = PublisherStateMachine.Options()
        options.leaseTTL = .seconds(15)
        options.heartbeatInterval = .seconds(5)
        options.reconcileInterval = .seconds(300)
        options.batchLimit = 256
        return options
    }

    func set(_ name: String, count: Int = 2) -> EndpointSet { Fixtures.endpointSet(name, source: source, count: count) }
    var lease: Lease { Lease(source: source, holder: "a", epoch: 7) }
    func result(_ writes: Int, generation: String = "g1") -> WriteResult {
        WriteResult(outcomes: Array(repeating: .written(revision: 1), count: writes), generation: generation, createdGeneration: false)
    }

    /// A machine that holds the lease, has published `sets` and set its canary, at `start`.
    func synced(_ sets: [EndpointSet], options: PublisherStateMachine.Options? = nil) -> PublisherStateMachine {
        var machine = PublisherStateMachine(options: options ?? self.options(), now: start)
        machine.replaceAll(sets, source: source, now: start)
        #expect(machine.next(now: start, session: 1) == .acquireLease)
        machine.leaseAcquired(lease, now: start)
        #expect(machine.next(now: start, session: 1) == .heartbeat(lease))
        machine.heartbeatSent(now: start)
        #expect(machine.next(now: start, session: 1) == .readStoredHashes)
        machine.storedHashesRead([:], session: 1)
        #expect(machine.next(now: start, session: 1) == .write(sets.sorted { $0.service < $1.service }.map(StoreWrite.put), lease))
        _ = machine.written(result(sets.count), now: start)
        #expect(machine.next(now: start, session: 1) == .markSynced(generation: "g1", serviceCount: sets.count, lease))
        machine.markedSynced(now: start)
        #expect(machine.status.isSynced)
        return machine
    }

    @Test func nothingIsWrittenBeforeTheListAndTheListEndsWithTheCanary() {
        var machine = PublisherStateMachine(options: options(), now: start)
        _ = machine.upsert(set("early"), now: start)
        #expect(machine.next(now: start, session: 1) == .acquireLease)
        machine.leaseAcquired(lease, now: start)
        #expect(machine.next(now: start, session: 1) == .heartbeat(lease))
        machine.heartbeatSent(now: start)
        #expect(machine.next(now: start, session: 1) == .wait(until: start + .seconds(5)), "no write before the initial list")
        var synced = synced([set("web"), set("api")])
        #expect(synced.takeNotices().contains(.synced(services: 2, writes: 2)))
        #expect(synced.next(now: start, session: 1) == .wait(until: start + .seconds(5)))
    }

    @Test func aStandbyPollsAtAThirdOfTheTTL() {
        var machine = PublisherStateMachine(options: options(), now: start)
        #expect(machine.next(now: start, session: 1) == .acquireLease)
        machine.leaseAcquired(nil, now: start)
        #expect(machine.next(now: start + .seconds(1), session: 1) == .wait(until: start + .seconds(5)))
        #expect(machine.next(now: start + .seconds(5), session: 1) == .acquireLease)
    }

    @Test func theLeaseIsRenewedAndHeartbeatsFollowTheSourcesReachability() {
        var machine = synced([set("web")])
        #expect(machine.next(now: start + .seconds(5), session: 1) == .renewLease(lease))
        machine.leaseRenewed(true, now: start + .seconds(5))
        #expect(machine.next(now: start + .seconds(5), session: 1) == .heartbeat(lease))
        machine.heartbeatSent(now: start + .seconds(5))

        machine.sourceReachable(false)
        #expect(machine.next(now: start + .seconds(10), session: 1) == .renewLease(lease))
        machine.leaseRenewed(true, now: start + .seconds(10))
        #expect(
            machine.next(now: start + .seconds(10), session: 1) == .wait(until: start + .seconds(15)),
            "no heartbeat while the source is away")
        machine.sourceReachable(true)
        #expect(machine.next(now: start + .seconds(11), session: 1) == .heartbeat(lease), "at once when it answers again")
        #expect(machine.takeNotices().filter { if case .sourceReachable = $0 { true } else { false } }.count == 2)
    }

    @Test func changesDuringAWriteGoInTheNextAndAFailedWriteLosesNothing() {
        var machine = synced([set("web"), set("api")])
        let first = machine.upsert(set("web", count: 3), now: start)
        #expect(first != nil)
        guard case .write(let batch, _) = machine.next(now: start, session: 1) else {
            Issue.record("no write")
            return
        }
        #expect(batch == [.put(set("web", count: 3))])
        #expect(machine.status.pendingWrites == 1)
        // Meanwhile: web again, and api removed.
        _ = machine.upsert(set("web", count: 4), now: start)
        machine.remove(set("api").service, now: start)
        machine.failed("Redis is away", staleOrNoLease: false, now: start)
        guard case .wait(let retry) = machine.next(now: start, session: 1) else {
            Issue.record("no backoff")
            return
        }
        #expect(retry > start && retry <= start + .milliseconds(100))
        // The retry carries the latest of everything: the failed write's service and the later changes.
        guard case .write(let again, _) = machine.next(now: retry, session: 1) else {
            Issue.record("no retry")
            return
        }
        #expect(again == [.delete(set("api").service), .put(set("web", count: 4))])
        let acknowledgment = machine.written(result(2), now: retry)
        #expect(acknowledgment?.services == [set("api").service, set("web").service])
        #expect(acknowledgment?.through == 2)
        #expect(machine.status.pendingWrites == 0)
    }

    @Test func aLostLeaseStopsWritingAndATakenOneReconciles() {
        var machine = synced([set("web")])
        _ = machine.upsert(set("web", count: 5), now: start)
        guard case .write = machine.next(now: start, session: 1) else {
            Issue.record("no write")
            return
        }
        machine.failed("LEGATION_STALE_EPOCH", staleOrNoLease: true, now: start)
        #expect(!machine.status.isLeader && !machine.status.isSynced)
        #expect(machine.takeNotices().contains(.lostLease(reason: "LEGATION_STALE_EPOCH")))
        #expect(machine.next(now: start, session: 1) == .acquireLease)
        let later = Lease(source: source, holder: "a", epoch: 9)
        machine.leaseAcquired(later, now: start)
        _ = machine.next(now: start, session: 1)  // heartbeat
        machine.heartbeatSent(now: start)
        #expect(machine.next(now: start, session: 1) == .readStoredHashes, "a taken lease reconciles")
        machine.storedHashesRead([set("web").service: set("web").versionHash], session: 1)
        #expect(
            machine.next(now: start, session: 1) == .write([.put(set("web", count: 5))], later),
            "what the store lacks, pending change included")
    }

    @Test func aWriterCutOffFromTheStoreStepsDownWhenItsLeaseRunsOutByItsOwnClock() {
        var machine = synced([set("web")])
        // The renewal at 5 s is sent at 5 s and answered at 6 s: the lease counts from 5 s.
        #expect(machine.next(now: start + .seconds(5), session: 1) == .renewLease(lease))
        machine.leaseRenewed(true, now: start + .seconds(6))
        _ = machine.next(now: start + .seconds(6), session: 1)  // heartbeat
        machine.heartbeatSent(now: start + .seconds(6))
        // From 11 s every renewal fails: the store cannot be reached.
        var now = start + .seconds(11)
        #expect(machine.next(now: now, session: 1) == .renewLease(lease))
        machine.failed("Redis is away", staleOrNoLease: false, now: now)
        while now < start + .seconds(30) {
            let action = machine.next(now: now, session: 1)
            guard case .wait(let until) = action else {
                machine.failed("Redis is away", staleOrNoLease: false, now: now)
                continue
            }
            #expect(until <= start + .seconds(20), "a retry wait never passes the lease's end")
            #expect(machine.status.isLeader == (now < start + .seconds(20)), "at \(now - start)")
            now = until
            if now >= start + .seconds(20) { break }
        }
        #expect(now == start + .seconds(20))
        _ = machine.next(now: now, session: 1)
        #expect(!machine.status.isLeader && !machine.status.isSynced, "stepped down at 5 s + the 15 s TTL")
        #expect(machine.takeNotices().contains(.lostLease(reason: "the lease ran out: no renewal succeeded within its TTL")))

        // The store answers again: the writer asks for the lease like any standby, and writes only with it.
        machine = PublisherStateMachine(options: options(), now: start)
        #expect(machine.next(now: start, session: 1) == .acquireLease)
        machine.leaseAcquired(lease, now: start + .seconds(2))
        #expect(machine.status.isLeader)
        _ = machine.next(now: start + .seconds(2), session: 1)  // heartbeat
        machine.failed("Redis is away", staleOrNoLease: false, now: start + .seconds(2))
        _ = machine.next(now: start + .seconds(15), session: 1)
        #expect(!machine.status.isLeader, "an acquired lease also counts from when it was asked for")
    }

    @Test func newDataGenerationsStoreSessionsAndTheIntervalReconcile() {
        var machine = synced([set("web")])
        // A flush finds a new generation: the store lost the data.
        _ = machine.upsert(set("web", count: 3), now: start)
        _ = machine.next(now: start, session: 1)
        _ = machine.written(result(1, generation: "g2"), now: start)
        #expect(machine.takeNotices().contains(.dataLost(generation: "g2")))
        #expect(machine.next(now: start, session: 1) == .readStoredHashes)
        machine.storedHashesRead([set("web").service: set("web", count: 3).versionHash], session: 1)
        #expect(machine.next(now: start, session: 1) == .write([], lease), "nothing differs: one empty write for the generation")
        _ = machine.written(result(0, generation: "g2"), now: start)
        #expect(machine.next(now: start, session: 1) == .markSynced(generation: "g2", serviceCount: 1, lease))
        machine.markedSynced(now: start)

        // A reconnect (the store session moves on): reconcile.
        #expect(machine.next(now: start + .seconds(1), session: 2) == .readStoredHashes)
        #expect(machine.takeNotices().contains(.reconnected))
        machine.storedHashesRead([set("web").service: set("web", count: 3).versionHash], session: 2)
        _ = machine.next(now: start + .seconds(1), session: 2)
        _ = machine.written(result(0, generation: "g2"), now: start + .seconds(1))
        _ = machine.next(now: start + .seconds(1), session: 2)
        machine.markedSynced(now: start + .seconds(1))
        #expect(machine.next(now: start + .seconds(2), session: 2) == .wait(until: start + .seconds(5)), "the same session: nothing")

        // Anti-entropy, five minutes on (renewals and heartbeats answered on the way).
        var now = start + .seconds(2)
        var reconciled = false
        while now < start + .seconds(301), !reconciled {
            switch machine.next(now: now, session: 2) {
            case .renewLease: machine.leaseRenewed(true, now: now)
            case .heartbeat: machine.heartbeatSent(now: now)
            case .wait(let until): now = until
            case .readStoredHashes: reconciled = true
            default:
                Issue.record("unexpected action")
                return
            }
        }
        #expect(reconciled && now >= start + .seconds(300) && now < start + .seconds(301))
    }

    @Test func theCoalescingWindowGathersAndBigChangesGoInBatches() {
        var options = options()
        options.coalescingWindow = .milliseconds(50)
        var machine = synced([set("web")], options: options)
        _ = machine.upsert(set("web", count: 3), now: start)
        #expect(machine.next(now: start + .milliseconds(10), session: 1) == .wait(until: start + .milliseconds(50)))
        _ = machine.upsert(set("db"), now: start + .milliseconds(20))
        guard case .write(let batch, _) = machine.next(now: start + .milliseconds(50), session: 1) else {
            Issue.record("no write")
            return
        }
        #expect(batch.count == 2, "both, in one write")
        _ = machine.written(result(2), now: start + .milliseconds(50))

        var big = synced([set("web")])
        let sets = (0..<600).map { set("svc-\($0)") }
        big.replaceAll(sets, source: source, now: start)
        var sizes: [Int] = []
        while case .write(let writes, _) = big.next(now: start, session: 1) {
            sizes.append(writes.count)
            #expect((big.written(result(writes.count), now: start) == nil) == (sizes.count < 3))
        }
        #expect(sizes == [256, 256, 89], "600 puts and web's delete, 256 a call")
    }
}
