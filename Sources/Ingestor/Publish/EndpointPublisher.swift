import Logging
import Metrics
import Shared

/// Publishes one source's endpoint sets to the store: the writer side of design §2 and Cilium's
/// `SyncStore`. A source (Kubernetes watch, file) tells it the desired state; the publisher makes the
/// store match it.
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

    public nonisolated let source: SourceCluster
    public nonisolated let holder: String
    private let store: any EndpointStoreWriter
    private let options: Options
    private let logger: Logger
    private let wake = WakeSignal()

    private var desired: [ServiceKey: EndpointSet] = [:]
    private var dirty: Set<ServiceKey> = []
    /// Services in the write now awaiting the store's answer.
    private var inFlight = 0
    /// Upserts accepted so far (their sequence numbers).
    private var upserts: UInt64 = 0
    private var flushObserver: FlushObserver?
    private var listed = false
    private var lease: Lease?
    private var generation: String?
    private var needsReconcile = true
    /// The store session the last reconcile read the store in.
    private var reconciledSession: UInt64?
    private var synced = false
    private var lastError: String?
    private var reachable = true
    private var heartbeatDue = false

    private let published: Counter
    private let unchanged: Counter
    private let errors: Counter
    private let latency: Timer
    private let leaderGauge: Gauge
    private let syncedGauge: Gauge
    private let reachableGauge: Gauge

    public init(
        store: any EndpointStoreWriter, source: SourceCluster, holder: String, options: Options = Options(),
        logger: Logger = Logger(label: "legation.publisher"), metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.store = store
        self.source = source
        self.holder = holder
        self.options = options
        var logger = logger
        logger[metadataKey: "source"] = "\(source)"
        self.logger = logger
        let dimensions = [("source", source.name)]
        published = Counter(label: "legation_ingestor_writes_total", dimensions: dimensions + [("result", "written")], factory: metricsFactory)
        unchanged = Counter(label: "legation_ingestor_writes_total", dimensions: dimensions + [("result", "unchanged")], factory: metricsFactory)
        errors = Counter(label: "legation_ingestor_publish_errors_total", dimensions: dimensions, factory: metricsFactory)
        latency = Timer(label: "legation_ingestor_publish_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds, factory: metricsFactory)
        leaderGauge = Gauge(label: "legation_ingestor_lease_held", dimensions: dimensions, factory: metricsFactory)
        syncedGauge = Gauge(label: "legation_ingestor_synced", dimensions: dimensions, factory: metricsFactory)
        reachableGauge = Gauge(label: "legation_ingestor_source_reachable", dimensions: dimensions, factory: metricsFactory)
        reachableGauge.record(1)
    }

    /// Whether the source (its API server) answers. While it does not, what was published stays but no
    /// heartbeat is written, so readers see the source turn stale (design §4: stale, not gone) instead
    /// of trusting a writer that cannot see its cluster. The next heartbeat goes out as soon as it answers.
    public func sourceReachable(_ isReachable: Bool) {
        guard isReachable != reachable else { return }
        reachable = isReachable
        reachableGauge.record(isReachable ? 1 : 0)
        if isReachable {
            logger.info("the source answers again: heartbeats resume")
            heartbeatDue = true
            wake.signal()
        } else {
            logger.warning("the source does not answer: heartbeats withheld until it does (readers will flag it stale; its endpoints stay)")
        }
    }

    // MARK: The desired state, from the source

    /// The source's complete state (its initial list, or a relist): services not in `sets` are deleted.
    public func replaceAll(_ sets: [EndpointSet]) {
        var next: [ServiceKey: EndpointSet] = [:]
        for set in sets where set.source == source { next[set.service] = set }
        for key in Set(desired.keys).union(next.keys) where desired[key] != next[key] { dirty.insert(key) }
        desired = next
        if !listed {
            listed = true
            needsReconcile = true
        }
        wake.signal()
    }

    /// One service's full endpoint set (latest wins). - Returns: its sequence number (see
    /// `observeFlushes`), or nil when it changed nothing.
    @discardableResult
    public func upsert(_ set: EndpointSet) -> UInt64? {
        guard set.source == source, desired[set.service] != set else { return nil }
        desired[set.service] = set
        dirty.insert(set.service)
        upserts += 1
        wake.signal()
        return upserts
    }

    /// Several changes at once, in order (the events of one read from a watch): they are all in before
    /// the write loop wakes, so a burst goes out in one write. - Returns: the sequence number of the
    /// last upsert that changed something, or nil.
    @discardableResult
    public func apply(_ changes: [EndpointChange]) -> UInt64? {
        var last: UInt64?
        for change in changes {
            switch change {
            case .upsert(let set): last = upsert(set) ?? last
            case .remove(let key): remove(key)
            }
        }
        return last
    }

    /// The service no longer exists in the source.
    public func remove(_ service: ServiceKey) {
        guard desired.removeValue(forKey: service) != nil else { return }
        dirty.insert(service)
        wake.signal()
    }

    /// Called after each write of changed services is acknowledged by the store: the services, the
    /// sequence number of the last upsert the write carries (every earlier upsert of those services is
    /// in it), and when it was acknowledged. For benchmarks and tests timing event → acknowledgement.
    public typealias FlushObserver = @Sendable (_ services: [ServiceKey], _ through: UInt64, _ acknowledged: ContinuousClock.Instant) -> Void

    public func observeFlushes(_ observer: @escaping FlushObserver) {
        flushObserver = observer
    }

    public var status: Status {
        Status(isLeader: lease != nil, isSynced: synced, pendingWrites: dirty.count + inFlight, lastError: lastError, isSourceReachable: reachable)
    }

    // MARK: The loop

    /// Runs until cancelled; then flushes once and releases the lease.
    public func run() async {
        var failures = 0
        var nextRenewal = ContinuousClock.now
        var nextHeartbeat = ContinuousClock.now
        var nextReconcile = ContinuousClock.now + options.reconcileInterval
        while !Task.isCancelled {
            do {
                let now = ContinuousClock.now
                if lease == nil {
                    guard try await takeLease() else {
                        await wake.wait(for: options.leaseTTL / 3)
                        continue
                    }
                    nextRenewal = .now + options.leaseTTL / 3
                    nextHeartbeat = .now
                } else if now >= nextRenewal, let current = lease {
                    guard try await store.renewLease(current, ttl: options.leaseTTL) else {
                        loseLease("the lease expired and was taken")
                        continue
                    }
                    nextRenewal = now + options.leaseTTL / 3
                }
                if now >= nextHeartbeat || heartbeatDue, reachable, let current = lease {
                    try await store.heartbeat(lease: current, ttl: options.heartbeatInterval * 3)
                    nextHeartbeat = now + options.heartbeatInterval
                    heartbeatDue = false
                }
                if now >= nextReconcile {
                    needsReconcile = true
                    nextReconcile = now + options.reconcileInterval
                }
                if let reconciledSession, await store.session() != reconciledSession, !needsReconcile {
                    logger.info("reconnected to the store; reconciling it with the desired state")
                    needsReconcile = true
                }
                if listed, needsReconcile {
                    try await reconcile()
                } else if listed, !dirty.isEmpty {
                    if options.coalescingWindow > .zero { try await Task.sleep(for: options.coalescingWindow) }
                    try await flushDirty()
                }
                failures = 0
                lastError = nil
                if dirty.isEmpty || !listed {
                    let next = min(nextRenewal, nextHeartbeat, nextReconcile)
                    await wake.wait(for: max(.milliseconds(1), next - .now))
                }
            } catch is CancellationError {
                break
            } catch let error as StoreError where error.code == .staleEpoch || error.code == .noLease {
                loseLease("\(error)")
            } catch {
                failures += 1
                errors.increment()
                lastError = "\(error)"
                let delay = Backoff.delay(attempt: failures, initial: options.retryInitialDelay, maximum: options.retryMaximumDelay)
                logger.warning("cannot publish; will retry", metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
        }
        await shutdown()
    }

    private func takeLease() async throws -> Bool {
        guard let acquired = try await store.acquireLease(source: source, holder: holder, ttl: options.leaseTTL) else {
            return false
        }
        lease = acquired
        needsReconcile = true
        leaderGauge.record(1)
        logger.info("took the lease; this instance writes the source", metadata: ["epoch": "\(acquired.epoch)"])
        return true
    }

    private func loseLease(_ reason: String) {
        if lease != nil {
            logger.warning("lost the lease; waiting as standby", metadata: ["reason": "\(reason)"])
        }
        lease = nil
        synced = false
        leaderGauge.record(0)
        syncedGauge.record(0)
    }

    /// Makes the store equal the desired state, then sets the canary.
    private func reconcile() async throws {
        guard let lease else { return }
        let session = await store.session()
        let stored = try await store.storedHashes(source: source)
        var writes: [StoreWrite] = []
        for (key, set) in desired.sorted(by: { $0.key < $1.key }) where stored[key] != set.versionHash {
            writes.append(.put(set))
        }
        for key in stored.keys.sorted() where desired[key] == nil { writes.append(.delete(key)) }
        let pendingBefore = dirty
        dirty = []
        do {
            let generation = try await write(writes, lease: lease)
            try await store.markSynced(generation: generation, serviceCount: desired.count, lease: lease)
            self.generation = generation
        } catch {
            dirty.formUnion(pendingBefore)
            throw error
        }
        needsReconcile = false
        reconciledSession = session
        if !synced {
            logger.info("initial state published; canary set", metadata: ["services": "\(desired.count)", "writes": "\(writes.count)"])
        }
        synced = true
        syncedGauge.record(1)
    }

    private func flushDirty() async throws {
        guard let lease else { return }
        let through = upserts
        let keys = dirty.sorted()
        dirty = []
        inFlight = keys.count
        defer { inFlight = 0 }
        let writes = keys.map { key in desired[key].map(StoreWrite.put) ?? .delete(key) }
        do {
            let result = try await write(writes, lease: lease)
            flushObserver?(keys, through, .now)
            if let generation, generation != result {
                logger.warning("the store lost this source's data; republishing everything", metadata: ["generation": "\(result)"])
                needsReconcile = true
            }
        } catch {
            dirty.formUnion(keys)
            throw error
        }
    }

    /// Writes in batches; returns the generation the store reports.
    private func write(_ writes: [StoreWrite], lease: Lease) async throws -> String {
        var generation = self.generation ?? ""
        var start = 0
        repeat {
            let batch = Array(writes[start..<min(start + options.batchLimit, writes.count)])
            let began = ContinuousClock.now
            let result = try await store.write(batch, lease: lease)
            latency.recordNanoseconds((ContinuousClock.now - began).nanoseconds)
            for outcome in result.outcomes {
                if case .written = outcome { published.increment() } else { unchanged.increment() }
            }
            generation = result.generation
            start += options.batchLimit
        } while start < writes.count
        return generation
    }

    private func shutdown() async {
        if let lease {
            if listed, !dirty.isEmpty { try? await flushDirty() }
            try? await store.releaseLease(lease)
            logger.info("released the lease")
        }
        lease = nil
        leaderGauge.record(0)
    }
}
