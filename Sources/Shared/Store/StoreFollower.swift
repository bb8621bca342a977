import Logging
import Metrics

/// Follows every source in a store: reads each in full once, then tails the change streams, and hands
/// every batch of updates to `deliver`. The async shell around `SourceFeed`: it does the I/O, keeps the
/// feeds, counts what they reject, and retries with jittered backoff when the store is away.
///
/// While the store is unreachable nothing is delivered: the consumer keeps the last known state (a lost
/// connection never means "deleted"). `run()` returns when its task is cancelled.
public final class StoreFollower: Sendable {
    public struct Options: Sendable {
        /// Sources to follow even before they register themselves in the store.
        public var sources: Set<SourceCluster> = []
        /// Also follow every source registered in the store.
        public var discoverSources = true
        /// How often to look for newly registered sources.
        public var discoveryInterval: Duration = .seconds(5)
        /// Longest wait for changes in one read (blocking `XREAD`).
        public var pollWait: Duration = .seconds(1)
        /// Most stream entries read per source per round.
        public var batchLimit = 1024
        /// Read every source in full this often, whatever the stream says (anti-entropy).
        public var fullResyncInterval: Duration = .seconds(300)
        /// Full reads of sources (at start, after a reconnect) in flight at once: one source is decoded
        /// while the next ones are read.
        public var snapshotReadsInFlight = 4
        public var retryInitialDelay: Duration = .milliseconds(100)
        public var retryMaximumDelay: Duration = .seconds(1)
        public init() {}
    }

    /// One delivery: the updates of one source and where its feed stands.
    public struct Delivery: Sendable {
        public var source: SourceCluster
        public var updates: [EndpointChange]
        public var feed: SourceFeed
        /// True when the updates come from reading the source in full.
        public var fromSnapshot: Bool
    }

    private let reader: any EndpointStoreReader
    private let options: Options
    private let logger: Logger
    private let metrics: MetricHandles
    private let deliver: @Sendable (Delivery) async -> Void
    private let caughtUp: @Sendable () async -> Void

    /// - Parameter caughtUp: called once, after every source known at start has been read in full and
    ///   delivered (readiness waits for it).
    public init(
        reader: any EndpointStoreReader,
        options: Options = Options(),
        logger: Logger = Logger(label: "legation.store.follower"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        caughtUp: @escaping @Sendable () async -> Void = {},
        deliver: @escaping @Sendable (Delivery) async -> Void
    ) {
        self.caughtUp = caughtUp
        self.reader = reader
        self.options = options
        self.logger = logger
        self.metrics = MetricHandles(factory: metricsFactory)
        self.deliver = deliver
    }

    /// Follows until cancelled.
    public func run() async {
        var feeds: [SourceCluster: SourceFeed] = [:]
        var pending = options.sources  // sources to read in full
        for source in options.sources { feeds[source] = SourceFeed(source: source) }
        var nextDiscovery = ContinuousClock.now
        var nextFullResync = ContinuousClock.now + options.fullResyncInterval
        var failures = 0
        var hasCaughtUp = false
        var session = reader.session

        while !Task.isCancelled {
            do {
                let now = ContinuousClock.now
                if options.discoverSources, now >= nextDiscovery {
                    for source in try await reader.sources() where feeds[source] == nil {
                        logger.info("following new source", metadata: ["source": "\(source)"])
                        feeds[source] = SourceFeed(source: source)
                        pending.insert(source)
                    }
                    nextDiscovery = now + options.discoveryInterval
                }
                if now >= nextFullResync {
                    pending.formUnion(feeds.keys)
                    nextFullResync = now + options.fullResyncInterval
                }
                let current = reader.session
                if current != session {
                    // Reconnected (a restart, a failover): read everything again; only differences reach the consumer.
                    if hasCaughtUp { logger.info("reconnected to the store; reading every source again") }
                    session = current
                    pending.formUnion(feeds.keys)
                }
                try await readInFull(pending.sorted()) { snapshot in
                    let source = snapshot.source
                    guard var feed = feeds[source] else { return }
                    let outcome = feed.apply(snapshot)
                    feeds[source] = feed
                    pending.remove(source)
                    if let error = snapshot.canaryError {
                        count("legation_store_records_rejected_total", source, reason: "canary")
                        logger.warning("unreadable canary", metadata: ["source": "\(source)", "error": "\(error)"])
                    }
                    await handle(outcome, of: feed, fromSnapshot: true)
                }
                if !hasCaughtUp {
                    hasCaughtUp = true
                    await caughtUp()
                }
                guard !feeds.isEmpty else {
                    try await Task.sleep(for: options.pollWait)
                    continue
                }
                let cursors = feeds.mapValues(\.cursor)
                let untilDiscovery = options.discoverSources ? max(.milliseconds(1), nextDiscovery - .now) : options.pollWait
                let wait = pending.isEmpty ? min(options.pollWait, untilDiscovery) : nil
                let changes = try await reader.changes(after: cursors, limit: options.batchLimit, wait: wait)
                for (source, entries) in changes.sorted(by: { $0.key < $1.key }) {
                    guard var feed = feeds[source] else { continue }
                    let outcome = feed.apply(entries)
                    feeds[source] = feed
                    if let reason = outcome.resyncReason {
                        pending.insert(source)
                        count("legation_store_resyncs_total", source)
                        logger.info("resyncing source", metadata: ["source": "\(source)", "reason": "\(reason)"])
                    }
                    await handle(outcome, of: feed, fromSnapshot: false)
                }
                failures = 0
            } catch is CancellationError {
                return
            } catch {
                failures += 1
                metrics.counter("legation_store_read_errors_total").increment()
                let delay = Backoff.delay(
                    attempt: failures, initial: options.retryInitialDelay, maximum: options.retryMaximumDelay)
                logger.warning(
                    "cannot read the store; serving the last known state",
                    metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// Reads `sources` in full, a few at once, and hands each snapshot to `apply` in the order given:
    /// one source is decoded while the next ones are read. A failed read ends the call; the sources
    /// applied before it stand.
    private func readInFull(
        _ sources: [SourceCluster], apply: (SourceSnapshot) async -> Void
    ) async throws {
        let reader = self.reader
        try await withThrowingTaskGroup(of: (Int, SourceSnapshot).self) { group in
            var launched = 0
            func launch() {
                let index = launched
                group.addTask { (index, try await reader.snapshot(of: sources[index])) }
                launched += 1
            }
            while launched < min(sources.count, options.snapshotReadsInFlight) { launch() }
            var arrived: [Int: SourceSnapshot] = [:]
            var next = 0
            while let (index, snapshot) = try await group.next() {
                arrived[index] = snapshot
                if launched < sources.count { launch() }
                while let ready = arrived.removeValue(forKey: next) {
                    await apply(ready)
                    next += 1
                }
            }
        }
    }

    private func handle(_ outcome: SourceFeed.Outcome, of feed: SourceFeed, fromSnapshot: Bool) async {
        if let published = outcome.newestPublishedAtUnixMilliseconds, published > 0 {
            let lag = max(0, WallClock.nowUnixMilliseconds - published)
            metrics.timer("legation_store_read_lag_seconds", [("source", feed.source.name)])
                .recordNanoseconds(lag * 1_000_000)
        }
        for rejection in outcome.rejections {
            count("legation_store_records_rejected_total", feed.source, reason: rejection.error.code.description)
            logger.warning(
                "rejected a stored record; keeping the last good state of that service",
                metadata: ["source": "\(feed.source)", "record": "\(rejection.field)", "error": "\(rejection.error)"])
        }
        for ignored in outcome.ignored {
            count("legation_store_record_fields_ignored_total", feed.source, reason: "failover")
            logger.warning(
                "ignored part of a stored record; the rest of it is applied",
                metadata: ["source": "\(feed.source)", "record": "\(ignored.field)", "error": "\(ignored.error)"])
        }
        if !outcome.updates.isEmpty || fromSnapshot {
            await deliver(Delivery(source: feed.source, updates: outcome.updates, feed: feed, fromSnapshot: fromSnapshot))
        }
    }

    private func count(_ label: String, _ source: SourceCluster, reason: String? = nil) {
        var dimensions = [("source", source.name)]
        if let reason { dimensions.append(("reason", reason)) }
        metrics.counter(label, dimensions).increment()
    }
}
