import Logging
import Metrics
import Shared

/// Publishes one source's endpoint sets to the store: the writer side of design §2 and Cilium's
/// `SyncStore`. A source (Kubernetes watch, file) tells it the desired state; the publisher makes the
/// store match it. The rules live in `PublisherStateMachine`; this actor is its shell: it feeds it the
/// source's changes and the clock, executes each action against the store, and reports what happened.
///
/// - Latest value wins per service; content already stored (same hash) is skipped by the store.
/// - Writes go out as soon as the previous batch is acknowledged: changes that arrive meanwhile are
///   coalesced into the next batch (plus an optional `coalescingWindow`).
/// - Only while holding the source's lease; a standby waits and takes over when it expires. A lost lease
///   stops writing at once; a regained one reconciles the store with the desired state.
/// - After the source's initial list: reconcile (put what differs, delete what no longer exists), then the
///   sync canary. Data lost in Redis (a new generation) triggers the same reconcile and a new canary, and
///   so does a new store session (a reconnect: a restart, or a failover to a replica that may lack the
///   last writes acknowledged before it).
/// - Store errors are retried with jittered backoff; nothing is dropped: the desired state is kept here.
/// - On cancellation `run()` makes one last attempt to flush, then releases the lease.
public actor EndpointPublisher {
    public struct Options: Sendable {
        public var leaseTTL: Duration = .seconds(15)
        public var heartbeatInterval: Duration = .seconds(5)
        /// Extra wait after a change before writing, to gather more (0: write as soon as possible).
        public var coalescingWindow: Duration = .zero
        /// Most writes per store call.
        public var batchLimit = 256
        /// Reconcile the store with the desired state this often (anti-entropy).
        public var reconcileInterval: Duration = .seconds(300)
        public var retryInitialDelay: Duration = .milliseconds(50)
        public var retryMaximumDelay: Duration = .seconds(1)
        public init() {}
    }

    /// What the publisher is doing, for readiness and status pages.
    public struct Status: Sendable, Equatable {
        public var isLeader: Bool
        /// The initial list was published and the canary set.
        public var isSynced: Bool
        /// Services changed and not yet acknowledged by the store (waiting or being written).
        public var pendingWrites: Int
        public var lastError: String?
        /// The source answers (see `sourceReachable(_:)`); heartbeats are withheld while it does not.
        public var isSourceReachable = true
    }

    /// Told of every write the store acknowledged, with when (the ingest benchmark times event →
    /// acknowledgment with it).
    public typealias AcknowledgmentObserver = @Sendable (PublisherStateMachine.Acknowledgment, ContinuousClock.Instant) -> Void

    public nonisolated let source: SourceCluster
    public nonisolated let holder: String
    private let store: any EndpointStoreWriter
    private let options: Options
    private let logger: Logger
    private let wake = WakeSignal()
    private var machine: PublisherStateMachine
    private let acknowledged: AcknowledgmentObserver?

    private let published: Counter
    private let unchanged: Counter
    private let errors: Counter
    private let latency: Timer
    private let leaderGauge: Gauge
    private let syncedGauge: Gauge
    private let reachableGauge: Gauge

    public init(
        store: any EndpointStoreWriter, source: SourceCluster, holder: String, options: Options = Options(),
        logger: Logger = Logger(label: "legation.publisher"), metricsFactory: any MetricsFactory = MetricsSystem.factory,
        acknowledged: AcknowledgmentObserver? = nil
    ) {
        self.store = store
        self.source = source
        self.holder = holder
        self.options = options
        self.machine = PublisherStateMachine(options: options, now: .now)
        self.acknowledged = acknowledged
        var logger = logger
        logger[metadataKey: "source"] = "\(source)"
        self.logger = logger
        let dimensions = [("source", source.name)]
        published = Counter(
            label: "legation_ingestor_writes_total", dimensions: dimensions + [("result", "written")], factory: metricsFactory)
        unchanged = Counter(
            label: "legation_ingestor_writes_total", dimensions: dimensions + [("result", "unchanged")], factory: metricsFactory)
        errors = Counter(label: "legation_ingestor_publish_errors_total", dimensions: dimensions, factory: metricsFactory)
        latency = Timer(
            label: "legation_ingestor_publish_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds,
            factory: metricsFactory)
        leaderGauge = Gauge(label: "legation_ingestor_lease_held", dimensions: dimensions, factory: metricsFactory)
        syncedGauge = Gauge(label: "legation_ingestor_synced", dimensions: dimensions, factory: metricsFactory)
        reachableGauge = Gauge(label: "legation_ingestor_source_reachable", dimensions: dimensions, factory: metricsFactory)
        reachableGauge.record(1)
    }

    /// Whether the source (its API server) answers. While it does not, what was published stays but no
    /// heartbeat is written, so readers see the source turn stale (design §4: stale, not gone) instead
    /// of trusting a writer that cannot see its cluster. The next heartbeat goes out as soon as it answers.
    public func sourceReachable(_ isReachable: Bool) {
        machine.sourceReachable(isReachable)
        report()
        wake.signal()
    }

    // MARK: The desired state, from the source

    /// The source's complete state (its initial list, or a relist): services not in `sets` are deleted.
    public func replaceAll(_ sets: [EndpointSet]) {
        machine.replaceAll(sets, source: source, now: .now)
        wake.signal()
    }

    /// One service's full endpoint set (latest wins). - Returns: its sequence number (see
    /// `AcknowledgmentObserver`), or nil when it changed nothing.
    @discardableResult
    public func upsert(_ set: EndpointSet) -> UInt64? {
        guard set.source == source, let sequence = machine.upsert(set, now: .now) else { return nil }
        wake.signal()
        return sequence
    }

    /// Several changes at once, in order (the events of one read from a watch): they are all in before
    /// the write loop wakes, so a burst goes out in one write. - Returns: the sequence number of the
    /// last upsert that changed something, or nil.
    @discardableResult
    public func apply(_ changes: [EndpointChange]) -> UInt64? {
        var last: UInt64?
        let now = ContinuousClock.now
        for change in changes {
            switch change {
            case .upsert(let set): if set.source == source { last = machine.upsert(set, now: now) ?? last }
            case .remove(let key): machine.remove(key, now: now)
            }
        }
        wake.signal()
        return last
    }

    /// The service no longer exists in the source.
    public func remove(_ service: ServiceKey) {
        machine.remove(service, now: .now)
        wake.signal()
    }

    public var status: Status { machine.status }

    // MARK: The loop

    /// Runs until cancelled; then flushes once and releases the lease.
    public func run() async {
        while !Task.isCancelled {
            let action = machine.next(now: .now, session: store.session)
            if case .wait(let until) = action {
                await wake.wait(for: max(.milliseconds(1), until - .now))
            } else {
                await execute(action)
            }
            report()
        }
        await shutdown()
    }

    /// Runs one store call and tells the machine how it went.
    private func execute(_ action: PublisherStateMachine.Action) async {
        do {
            switch action {
            case .acquireLease:
                machine.leaseAcquired(try await store.acquireLease(source: source, holder: holder, ttl: options.leaseTTL), now: .now)
            case .renewLease(let lease):
                machine.leaseRenewed(try await store.renewLease(lease, ttl: options.leaseTTL), now: .now)
            case .heartbeat(let lease):
                try await store.heartbeat(lease: lease, ttl: options.heartbeatInterval * 3)
                machine.heartbeatSent(now: .now)
            case .readStoredHashes:
                let session = store.session
                machine.storedHashesRead(try await store.storedHashes(source: source), session: session)
            case .write(let writes, let lease):
                let began = ContinuousClock.now
                let result = try await store.write(writes, lease: lease)
                latency.recordNanoseconds((ContinuousClock.now - began).nanoseconds)
                for outcome in result.outcomes {
                    if case .written = outcome { published.increment() } else { unchanged.increment() }
                }
                let now = ContinuousClock.now
                if let acknowledgment = machine.written(result, now: now) { acknowledged?(acknowledgment, now) }
            case .markSynced(let generation, let count, let lease):
                try await store.markSynced(generation: generation, serviceCount: count, lease: lease)
                machine.markedSynced(now: .now)
            case .wait:
                break
            }
        } catch let error as StoreError where error.code == .staleEpoch || error.code == .noLease {
            machine.failed("\(error)", staleOrNoLease: true, now: .now)
        } catch {
            errors.increment()
            machine.failed("\(error)", staleOrNoLease: false, now: .now)
        }
    }

    /// Logs and counts what the machine noticed; keeps the gauges current.
    private func report() {
        for notice in machine.takeNotices() {
            switch notice {
            case .tookLease(let lease):
                logger.info("took the lease; this instance writes the source", metadata: ["epoch": "\(lease.epoch)"])
            case .lostLease(let reason):
                logger.warning("lost the lease; waiting as standby", metadata: ["reason": "\(reason)"])
            case .synced(let services, let writes):
                logger.info("initial state published; canary set", metadata: ["services": "\(services)", "writes": "\(writes)"])
            case .dataLost(let generation):
                logger.warning("the store lost this source's data; republishing everything", metadata: ["generation": "\(generation)"])
            case .reconnected:
                logger.info("reconnected to the store; reconciling it with the desired state")
            case .sourceReachable(true):
                logger.info("the source answers again: heartbeats resume")
            case .sourceReachable(false):
                logger.warning(
                    "the source does not answer: heartbeats withheld until it does (readers will flag it stale; its endpoints stay)")
            case .retrying(let error, let delay):
                logger.warning("cannot publish; will retry", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
            }
        }
        let status = machine.status
        leaderGauge.record(status.isLeader ? 1 : 0)
        syncedGauge.record(status.isSynced ? 1 : 0)
        reachableGauge.record(status.isSourceReachable ? 1 : 0)
    }

    /// One last attempt to write what is pending (a few store calls at most), then the lease goes.
    private func shutdown() async {
        var steps = 0
        while machine.heldLease != nil, machine.hasPendingWrites, steps < 16 {
            steps += 1
            let action = machine.next(now: .now, session: store.session)
            if case .wait = action { break }
            await execute(action)
        }
        if let lease = machine.heldLease {
            try? await store.releaseLease(lease)
            machine.leaseReleased()
            logger.info("released the lease")
        }
        leaderGauge.record(0)
    }
}
