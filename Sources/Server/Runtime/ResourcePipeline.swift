import Logging
import Metrics
import Shared

/// From store deliveries to published snapshots: applies every delivery to the `ResourceTable`,
/// debounces, rebuilds what changed and publishes the snapshot to the hub. Also owns readiness and the
/// per-source status (synced, stale, removed) behind `/debug/sources` and the source metrics.
///
/// Readiness (design §5): false until the store has been read in full once and every required source's
/// canary has been seen, or `readinessTimeout` has passed since start for the ones still missing. Once
/// ready, it stays ready: a lost store means serving the last known state, not refusing clients.
public actor ResourcePipeline {
    public struct Options: Sendable {
        public var resources = ResourceOptions()
        public var debounce = DebounceOptions()
        /// Sources whose canary readiness waits for.
        public var requiredSources: Set<SourceCluster> = []
        public var readinessTimeout: Duration = .seconds(30)
        public init() {}
    }

    private let hub: XDSHub
    private let options: Options
    private let logger: Logger
    private let metrics: MetricHandles
    private var table: ResourceTable
    private var sources: [SourceCluster: SourceStatus] = [:]
    private var firstChange: ContinuousClock.Instant?
    private var lastChange: ContinuousClock.Instant?
    private var caughtUp = false
    private var ready = false
    private let startedAt = ContinuousClock.now
    private let wake = WakeSignal()

    public init(
        hub: XDSHub, options: Options = Options(), logger: Logger = Logger(label: "legation.xds.pipeline"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.hub = hub
        self.options = options
        self.logger = logger
        self.metrics = MetricHandles(factory: metricsFactory)
        self.table = ResourceTable(options: options.resources)
        for source in options.requiredSources {
            sources[source] = SourceStatus(
                source: source, services: 0, synced: false, removed: false, heartbeat: nil, stale: false, rejectedRecords: 0)
        }
    }

    /// A `StoreFollower` delivery.
    public func deliver(_ delivery: StoreFollower.Delivery) {
        let now = ContinuousClock.now
        let dirty = table.apply(delivery.updates, from: delivery.source)
        var status =
            sources[delivery.source]
            ?? SourceStatus(
                source: delivery.source, services: 0, synced: false, removed: false, heartbeat: nil, stale: false, rejectedRecords: 0)
        status.services = delivery.feed.services.count
        status.synced = delivery.feed.isSynced
        status.removed = delivery.feed.isRemoved
        if delivery.fromSnapshot { status.heartbeat = delivery.feed.heartbeat }
        if !delivery.updates.isEmpty { status.lastChangeUnixMilliseconds = WallClock.nowUnixMilliseconds }
        sources[delivery.source] = status
        if dirty {
            if firstChange == nil { firstChange = now }
            lastChange = now
            wake.signal()
        }
        if caughtUp { evaluateReadiness() }
    }

    /// The follower read every source once: publish at once (no debounce) and re-evaluate readiness.
    public func markCaughtUp() {
        caughtUp = true
        flush()
        evaluateReadiness()
    }

    /// Heartbeats read from the store: a source without one is stale (its endpoints are kept).
    public func updateHeartbeats(_ heartbeats: [SourceCluster: Heartbeat]) {
        for source in sources.keys {
            sources[source]?.heartbeat = heartbeats[source]
            let stale = heartbeats[source] == nil && !(sources[source]?.removed ?? false)
            if stale, sources[source]?.stale == false, sources[source]?.services ?? 0 > 0 {
                logger.warning("source stopped sending heartbeats; keeping its last known endpoints", metadata: ["source": "\(source)"])
            }
            sources[source]?.stale = stale
            metrics.gauge("legation_xds_source_stale", [("source", source.name)]).record(stale ? 1 : 0)
            metrics.gauge("legation_xds_source_services", [("source", source.name)]).record(sources[source]?.services ?? 0)
            if let heartbeat = heartbeats[source] {
                let age = max(0, WallClock.nowUnixMilliseconds - heartbeat.sentAtUnixMilliseconds)
                metrics.gauge("legation_xds_source_heartbeat_age_seconds", [("source", source.name)]).record(Double(age) / 1000)
            }
        }
        if caughtUp { evaluateReadiness() }
    }

    /// Every known source, by name.
    public var sourceStatuses: [SourceStatus] { sources.values.sorted { $0.source < $1.source } }

    public var knownSources: [SourceCluster] { sources.keys.sorted() }

    /// Debounces and publishes until cancelled: idle until a change, then waits out the debounce
    /// (changes meanwhile only move its end, up to the maximum) and publishes.
    public func run() async {
        while !Task.isCancelled {
            // Before the store has been read in full, nothing is built: the first snapshot holds every
            // source (`markCaughtUp` publishes it at once), and a build meanwhile would hold up the
            // follower's deliveries only to be built again.
            guard caughtUp, let first = firstChange, let last = lastChange else {
                await wake.wait()
                continue
            }
            let wait = options.debounce.remaining(first: first, last: last, now: .now)
            if wait <= .zero {
                flush()
            } else {
                do { try await Task.sleep(for: wait) } catch { return }
            }
        }
    }

    /// Readiness may also come from the timeout alone: call this periodically.
    public func evaluateReadiness() {
        guard !ready else { return }
        guard caughtUp else {
            hub.setReady("the store has not been read yet")
            return
        }
        let waiting = options.requiredSources.filter { sources[$0]?.synced != true }.sorted()
        if waiting.isEmpty || ContinuousClock.now - startedAt >= options.readinessTimeout {
            if hub.notReadyReason != nil, !waiting.isEmpty {
                logger.warning("ready without the canary of some sources (timeout)", metadata: ["sources": "\(waiting)"])
            }
            ready = true
            hub.setReady(nil)
        } else {
            hub.setReady("waiting for the sync canary of \(waiting.map(\.name).joined(separator: ", "))")
        }
    }

    private func flush() {
        let arrived = firstChange
        firstChange = nil
        lastChange = nil
        if let snapshot = table.snapshot() {
            hub.publish(snapshot, changeArrivedAt: arrived)
            metrics.counter("legation_xds_snapshots_total").increment()
            metrics.gauge("legation_xds_resources", [("type", "cds")]).record(snapshot.all(.cluster).count)
            metrics.gauge("legation_xds_resources", [("type", "eds")]).record(snapshot.all(.endpoint).count)
        }
    }
}
