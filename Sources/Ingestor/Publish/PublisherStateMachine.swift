import Shared

/// The publisher's rules as a value type (design §7: protocol logic returns actions; the shell does the
/// I/O): what one source's writer holds (the desired state, the lease, what the store acknowledged) and,
/// asked `next(now:)`, the one thing to do now. No clock of its own: every input carries `now`, so tests
/// drive it through hours of leases and heartbeats without waiting.
///
/// - Latest value wins per service; changes that arrive while a write is in flight go into the next one.
/// - Nothing is written without the lease; a lost lease stops writing at once. The lease is also lost
///   by this writer's own clock: a TTL after the last acquire or renewal that succeeded was *sent*
///   (never later than the store's own expiry), so a writer cut off from the store stops calling itself
///   the leader when a standby may already have taken over. A (re)taken lease, the
///   end of the initial list, a new generation (data lost), a new store session (a reconnect or
///   failover) and the anti-entropy interval each start a reconcile: read what the store holds, write
///   what differs, set the canary.
/// - Store errors are retried with jittered backoff and lose nothing: the desired state is kept here.
public struct PublisherStateMachine: Sendable {
    public typealias Options = EndpointPublisher.Options

    /// What the shell must do next.
    public enum Action: Sendable, Equatable {
        case acquireLease
        case renewLease(Lease)
        case heartbeat(Lease)
        /// Read the store's version hashes, for a reconcile (answer with `storedHashesRead`).
        case readStoredHashes
        /// One batch of writes (answer with `written`).
        case write([StoreWrite], Lease)
        case markSynced(generation: String, serviceCount: Int, Lease)
        /// Nothing to do before this instant (or an input).
        case wait(until: ContinuousClock.Instant)
    }

    /// Something the shell should tell operators about (log, metric).
    public enum Notice: Sendable, Equatable {
        case tookLease(Lease)
        case lostLease(reason: String)
        /// The initial state (or a reconcile after taking the lease) reached the store with its canary.
        case synced(services: Int, writes: Int)
        /// The store's generation is new: its data was lost; everything is published again.
        case dataLost(generation: String)
        /// The store session changed (a reconnect): reconciling.
        case reconnected
        case sourceReachable(Bool)
        /// A store call failed and will be retried after `retryIn`.
        case retrying(error: String, retryIn: Duration)
    }

    /// A write the store acknowledged: the services it carried and the sequence number of the last
    /// upsert in it (every earlier upsert of those services is in it too).
    public struct Acknowledgment: Sendable, Equatable {
        public var services: [ServiceKey]
        public var through: UInt64
    }

    /// What is being written now.
    private enum Work: Sendable, Equatable {
        case none
        /// A reconcile: the batches left, then the canary; `session` is the store session its read was
        /// made in; `absorbed`, the changes pending when it started (pending again if it fails).
        case reconcile(remaining: [[StoreWrite]], writes: Int, session: UInt64, absorbed: Set<ServiceKey>)
        /// Changed services: the batches left, the keys of them all, the last upsert they carry.
        case flush(remaining: [[StoreWrite]], keys: [ServiceKey], through: UInt64)
    }

    public let options: Options
    private var desired: [ServiceKey: EndpointSet] = [:]
    private var dirty: Set<ServiceKey> = []
    /// When the oldest unwritten change came (for the coalescing window).
    private var dirtySince: ContinuousClock.Instant?
    private var upserts: UInt64 = 0
    private var listed = false
    private var lease: Lease?
    /// When the held lease runs out at the latest (the store's expiry is later: its TTL starts when the
    /// request arrives).
    private var leaseValidUntil: ContinuousClock.Instant?
    /// When the acquire or renewal in flight was asked for.
    private var leaseRequestedAt: ContinuousClock.Instant?
    private var generation: String?
    private var needsReconcile = true
    private var reconciledSession: UInt64?
    private var synced = false
    private var reachable = true
    private var heartbeatDue = false
    private var work = Work.none
    /// A request to the store is in flight (the shell answers it before asking `next`).
    private var awaiting = false
    private var nextRenewal: ContinuousClock.Instant
    private var nextHeartbeat: ContinuousClock.Instant
    private var nextReconcile: ContinuousClock.Instant
    private var retryAt: ContinuousClock.Instant?
    private var failures = 0
    private var lastError: String?
    private var notices: [Notice] = []

    public init(options: Options, now: ContinuousClock.Instant) {
        self.options = options
        nextRenewal = now
        nextHeartbeat = now
        nextReconcile = now + options.reconcileInterval
    }

    // MARK: The desired state

    /// The source's complete state (its initial list, or a relist): services not in `sets` are deleted.
    public mutating func replaceAll(_ sets: [EndpointSet], source: SourceCluster, now: ContinuousClock.Instant) {
        var next: [ServiceKey: EndpointSet] = [:]
        for set in sets where set.source == source { next[set.service] = set }
        for key in Set(desired.keys).union(next.keys) where desired[key] != next[key] { markDirty(key, now: now) }
        desired = next
        if !listed {
            listed = true
            needsReconcile = true
        }
    }

    /// One service's full set (latest wins). - Returns: its sequence number, or nil when it changed nothing.
    public mutating func upsert(_ set: EndpointSet, now: ContinuousClock.Instant) -> UInt64? {
        guard desired[set.service] != set else { return nil }
        desired[set.service] = set
        markDirty(set.service, now: now)
        upserts += 1
        return upserts
    }

    /// The service no longer exists in the source.
    public mutating func remove(_ service: ServiceKey, now: ContinuousClock.Instant) {
        guard desired.removeValue(forKey: service) != nil else { return }
        markDirty(service, now: now)
    }

    public mutating func sourceReachable(_ isReachable: Bool) {
        guard isReachable != reachable else { return }
        reachable = isReachable
        if isReachable { heartbeatDue = true }
        notices.append(.sourceReachable(isReachable))
    }

    private mutating func markDirty(_ key: ServiceKey, now: ContinuousClock.Instant) {
        if dirty.isEmpty { dirtySince = now }
        dirty.insert(key)
    }

    // MARK: What to do

    /// The one thing to do now. `session` is the store's connection session (`EndpointStoreSession`).
    public mutating func next(now: ContinuousClock.Instant, session: UInt64) -> Action {
        precondition(!awaiting, "answer the store call in flight before asking what is next")
        if lease != nil, let leaseValidUntil, now >= leaseValidUntil {
            loseLease("the lease ran out: no renewal succeeded within its TTL", now: now)
        }
        if let retryAt, now < retryAt { return .wait(until: min(retryAt, leaseValidUntil ?? retryAt)) }
        retryAt = nil
        guard let lease else {
            leaseRequestedAt = now
            return request(.acquireLease)
        }
        if now >= nextRenewal {
            leaseRequestedAt = now
            return request(.renewLease(lease))
        }
        if reachable, now >= nextHeartbeat || heartbeatDue { return request(.heartbeat(lease)) }
        switch work {
        case .reconcile(let remaining, _, _, _):
            if let batch = remaining.first { return request(.write(batch, lease)) }
            return request(.markSynced(generation: generation ?? "", serviceCount: desired.count, lease))
        case .flush(let remaining, _, _):
            if let batch = remaining.first { return request(.write(batch, lease)) }
        case .none:
            break
        }
        if now >= nextReconcile {
            needsReconcile = true
            nextReconcile = now + options.reconcileInterval
        }
        if let reconciledSession, session != reconciledSession, !needsReconcile {
            needsReconcile = true
            notices.append(.reconnected)
        }
        if listed, needsReconcile { return request(.readStoredHashes) }
        if listed, !dirty.isEmpty {
            if let dirtySince, options.coalescingWindow > .zero, now < dirtySince + options.coalescingWindow {
                return .wait(until: dirtySince + options.coalescingWindow)
            }
            let keys = dirty.sorted()
            dirty = []
            dirtySince = nil
            let writes = keys.map { key in desired[key].map(StoreWrite.put) ?? .delete(key) }
            work = .flush(remaining: batches(writes), keys: keys, through: upserts)
            return next(now: now, session: session)
        }
        var wake = min(nextRenewal, nextReconcile)
        if reachable { wake = min(wake, nextHeartbeat) }
        return .wait(until: wake)
    }

    private mutating func request(_ action: Action) -> Action {
        awaiting = true
        return action
    }

    private func batches(_ writes: [StoreWrite]) -> [[StoreWrite]] {
        stride(from: 0, to: writes.count, by: options.batchLimit).map { Array(writes[$0..<min($0 + options.batchLimit, writes.count)]) }
    }

    // MARK: What the store answered

    public mutating func leaseAcquired(_ acquired: Lease?, now: ContinuousClock.Instant) {
        answered()
        guard let acquired else {
            retryAt = now + options.leaseTTL / 3  // a standby polls
            return
        }
        lease = acquired
        leaseValidUntil = (leaseRequestedAt ?? now) + options.leaseTTL
        needsReconcile = true
        nextRenewal = now + options.leaseTTL / 3
        nextHeartbeat = now
        notices.append(.tookLease(acquired))
    }

    public mutating func leaseRenewed(_ renewed: Bool, now: ContinuousClock.Instant) {
        answered()
        guard renewed else { return loseLease("the lease expired and was taken", now: now) }
        leaseValidUntil = (leaseRequestedAt ?? now) + options.leaseTTL
        nextRenewal = now + options.leaseTTL / 3
    }

    public mutating func heartbeatSent(now: ContinuousClock.Instant) {
        answered()
        nextHeartbeat = now + options.heartbeatInterval
        heartbeatDue = false
    }

    /// The store's version hashes, read in store session `session`: the reconcile's writes.
    public mutating func storedHashesRead(_ stored: [ServiceKey: UInt64], session: UInt64) {
        answered()
        var writes: [StoreWrite] = []
        for (key, set) in desired.sorted(by: { $0.key < $1.key }) where stored[key] != set.versionHash { writes.append(.put(set)) }
        for key in stored.keys.sorted() where desired[key] == nil { writes.append(.delete(key)) }
        // The reconcile writes everything that differs, changes pending included. Even with nothing to
        // write it writes once (an empty batch): the store answers with its generation.
        let absorbed = dirty
        dirty = []
        dirtySince = nil
        work = .reconcile(remaining: writes.isEmpty ? [[]] : batches(writes), writes: writes.count, session: session, absorbed: absorbed)
    }

    /// One batch was written. - Returns: the acknowledgment of a flush whose last batch this was.
    public mutating func written(_ result: WriteResult, now: ContinuousClock.Instant) -> Acknowledgment? {
        answered()
        switch work {
        case .reconcile(let remaining, let writes, let session, let absorbed):
            generation = result.generation
            work = .reconcile(remaining: Array(remaining.dropFirst()), writes: writes, session: session, absorbed: absorbed)
            return nil
        case .flush(let remaining, let keys, let through):
            if let generation, generation != result.generation {
                notices.append(.dataLost(generation: result.generation))
                needsReconcile = true
            }
            let rest = Array(remaining.dropFirst())
            guard rest.isEmpty else {
                work = .flush(remaining: rest, keys: keys, through: through)
                return nil
            }
            work = .none
            return Acknowledgment(services: keys, through: through)
        case .none:
            return nil
        }
    }

    public mutating func markedSynced(now: ContinuousClock.Instant) {
        answered()
        guard case .reconcile(_, let writes, let session, _) = work else { return }
        work = .none
        needsReconcile = false
        reconciledSession = session
        if !synced { notices.append(.synced(services: desired.count, writes: writes)) }
        synced = true
    }

    /// A store call failed. `staleOrNoLease`: the store says this writer no longer holds the lease.
    public mutating func failed(_ error: String, staleOrNoLease: Bool, now: ContinuousClock.Instant) {
        awaiting = false
        requeueWork(now: now)
        if staleOrNoLease { return loseLease(error, now: now) }
        failures += 1
        lastError = error
        let delay = Backoff.delay(attempt: failures, initial: options.retryInitialDelay, maximum: options.retryMaximumDelay)
        retryAt = now + delay
        notices.append(.retrying(error: error, retryIn: delay))
    }

    /// A store call succeeded: the backoff starts over.
    private mutating func answered() {
        awaiting = false
        failures = 0
        lastError = nil
    }

    /// What was being written goes back to pending, so nothing is lost.
    private mutating func requeueWork(now: ContinuousClock.Instant) {
        var pending: Set<ServiceKey> = []
        switch work {
        case .flush(_, let keys, _): pending = Set(keys)
        case .reconcile(_, _, _, let absorbed):
            pending = absorbed
            needsReconcile = true
        case .none: break
        }
        if dirty.isEmpty, !pending.isEmpty { dirtySince = now }
        dirty.formUnion(pending)
        work = .none
    }

    private mutating func loseLease(_ reason: String, now: ContinuousClock.Instant) {
        if lease != nil { notices.append(.lostLease(reason: reason)) }
        requeueWork(now: now)
        lease = nil
        leaseValidUntil = nil
        synced = false
    }

    // MARK: Reading

    /// The lease held, if any (released on shutdown).
    public var heldLease: Lease? { lease }

    /// The shell gave the lease up (shutdown).
    public mutating func leaseReleased() {
        lease = nil
        leaseValidUntil = nil
        synced = false
    }

    /// The store calls waiting: dirty services and the services of the write in flight.
    public var status: EndpointPublisher.Status {
        var inFlight = 0
        if case .flush(_, let keys, _) = work { inFlight = keys.count }
        return EndpointPublisher.Status(
            isLeader: lease != nil, isSynced: synced, pendingWrites: dirty.count + inFlight, lastError: lastError,
            isSourceReachable: reachable)
    }

    /// Whether anything is left to write (for the last flush on shutdown).
    public var hasPendingWrites: Bool {
        if case .flush = work { return true }
        return listed && !dirty.isEmpty
    }

    /// The notices since the last call.
    public mutating func takeNotices() -> [Notice] {
        defer { notices = [] }
        return notices
    }
}
