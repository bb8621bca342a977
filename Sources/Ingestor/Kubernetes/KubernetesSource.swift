import Foundation
import Logging
import Metrics
import Shared

/// Publishes one Kubernetes cluster: LIST then WATCH of Services and EndpointSlices (cluster-wide or
/// per namespace), through the aggregator, into the publisher. The initial lists of both resources
/// complete before the first publish (so the canary means "everything"); after a relist (410 Gone)
/// the full state is handed over again and only real differences reach Redis.
///
/// Malformed events and objects are skipped, logged and counted; the watch goes on.
public actor KubernetesSource {
    public struct Options: Sendable {
        /// Namespaces to watch, each with its own LIST/WATCH; empty = cluster-wide.
        public var namespaces: [String] = []
        public var pageSize = 500
        public var watchTimeoutSeconds = 300
        public var initialBackoff: Duration = .milliseconds(200)
        public var maximumBackoff: Duration = .seconds(10)
        public init() {}
    }

    private let client: KubernetesClient
    private let publisher: EndpointPublisher
    private let options: Options
    private let logger: Logger
    private var aggregator: EndpointSliceAggregator
    private var listed: Set<String> = []
    private var initialPublished = false
    /// Watches started (numbered), and the last ended per path: an "opened" signal from an ended
    /// watch is stale.
    private var watchAttempts = 0
    private var endedAttempts: [String: Int] = [:]
    /// Watched paths whose last list or watch failed: while any does, the source counts as unreachable.
    private var failing: Set<String> = []
    private let source: SourceCluster
    private let metrics: MetricHandles
    private let lagTimer: Timer

    public init(
        client: KubernetesClient, publisher: EndpointPublisher, selection: ServiceSelection, options: Options = Options(),
        logger: Logger = Logger(label: "legation.kubernetes"), metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.client = client
        self.publisher = publisher
        self.options = options
        self.logger = logger
        self.source = publisher.source
        self.aggregator = EndpointSliceAggregator(source: publisher.source, selection: selection)
        self.metrics = MetricHandles(factory: metricsFactory)
        self.lagTimer = metrics.timer("legation_ingestor_change_lag_seconds", [("source", publisher.source.name)], unit: .seconds)
    }

    /// True once both resources were listed and handed to the publisher.
    public var isListed: Bool { initialPublished }

    /// Lists and watches until cancelled.
    public func run() async {
        let scopes: [String?] = options.namespaces.isEmpty ? [nil] : options.namespaces.map { Optional($0) }
        await withTaskGroup(of: Void.self) { group in
            for namespace in scopes {
                group.addTask { await self.follow(ServiceObject.self, namespace: namespace) }
                group.addTask { await self.follow(EndpointSliceObject.self, namespace: namespace) }
            }
        }
    }

    /// Runs one resource's watch machine: executes each action it returns.
    private func follow<Object: FollowedObject>(_ type: Object.Type, namespace: String?) async {
        let path = Object.path(namespace: namespace)
        let kind = Object.resource
        var machine = WatchStateMachine<Object>(initialBackoff: options.initialBackoff, maximumBackoff: options.maximumBackoff)
        var action = machine.start()
        while !Task.isCancelled {
            switch action {
            case .list(let delay):
                if delay > .zero { try? await Task.sleep(for: delay) }
                do {
                    let (items, version) = try await client.list(Object.self, path: path, pageSize: options.pageSize)
                    await listed(items, scope: path)
                    await reached(path, true)
                    count("legation_ingestor_lists_total", kind)
                    action = machine.listSucceeded(resourceVersion: version)
                } catch let error as IngestorError {
                    logger.warning("list failed", metadata: ["path": "\(path)", "error": "\(error)"])
                    count("legation_ingestor_list_errors_total", kind)
                    await reached(path, false)
                    action = machine.listFailed(status: error.status)
                } catch {
                    await reached(path, false)
                    action = machine.listFailed(status: nil)
                }
            case .watch(let version, let delay):
                if delay > .zero { try? await Task.sleep(for: delay) }
                action = await watch(path: path, from: version, machine: &machine)
            case .upsert, .delete, .none:
                // Only a watch's events give these, and `watch` runs them itself: not reached.
                action = machine.watchEnded()
            }
        }
    }

    /// Runs one watch: each event goes to the machine, whose action says what to do with its object;
    /// an action that abandons the watch (relist, or watch again) ends it and is returned.
    private func watch<Object: FollowedObject>(path: String, from version: String, machine: inout WatchStateMachine<Object>) async
        -> WatchStateMachine<Object>.Action
    {
        let kind = Object.resource
        count("legation_ingestor_watches_total", kind)
        // Counted per event: the handles are looked up once per watch.
        let upserts = counter("legation_ingestor_watch_events_total", kind, type: "upsert")
        let deletes = counter("legation_ingestor_watch_events_total", kind, type: "delete")
        let bookmarks = counter("legation_ingestor_watch_events_total", kind, type: "bookmark")
        watchAttempts += 1
        let attempt = watchAttempts
        defer { endedAttempts[path] = attempt }
        do {
            // The "opened" signal comes from the client's task and reaches this actor later, maybe after
            // this very watch failed: it counts only while its attempt has not ended.
            let opened: @Sendable () -> Void = { Task { await self.watchOpened(path, attempt: attempt) } }
            for try await batch in client.watch(
                Object.self, path: path, resourceVersion: version, timeoutSeconds: options.watchTimeoutSeconds, onOpen: opened)
            {
                // The events of one read are applied in order and their changes handed over together:
                // a burst goes to Redis in one write, not one write per event.
                var changes: [EndpointChange] = []
                for result in batch {
                    let event: WatchEvent<Object>
                    switch result {
                    case .success(let decoded): event = decoded
                    case .failure(let error):
                        count("legation_ingestor_malformed_events_total", kind)
                        logger.warning("skipped a malformed watch event", metadata: ["path": "\(path)", "error": "\(error)"])
                        continue
                    }
                    let relists = machine.relists
                    let action = machine.received(event)
                    switch action {
                    case .upsert(let object):
                        upserts.increment()
                        let result = Object.upsert(object, into: &aggregator)
                        report(result.rejections, kind: kind)
                        changes += initialPublished ? result.changes : []  // the initial publish hands everything over at once
                        recordLag(of: object)
                    case .delete(let object):
                        deletes.increment()
                        changes += initialPublished ? Object.delete(object, from: &aggregator) : []
                    case .none:
                        bookmarks.increment()
                    case .list, .watch:
                        count("legation_ingestor_watch_events_total", kind, type: "error")
                        if machine.relists > relists { count("legation_ingestor_relists_total", kind) }
                        logger.info("watch answered an error", metadata: ["path": "\(path)", "event": "\(event)"])
                        await handOver(changes)
                        return action
                    }
                }
                await handOver(changes)
            }
            return machine.watchEnded()
        } catch let error as IngestorError {
            if error.isExpired { count("legation_ingestor_relists_total", kind) } else { await reached(path, false) }
            count("legation_ingestor_watch_errors_total", kind)
            logger.info("watch ended with an error", metadata: ["path": "\(path)", "error": "\(error)"])
            return machine.watchFailed(
                status: error.status
                    ?? (error.httpStatus == 410
                        ? StatusObject(status: "Failure", message: error.message, reason: "Expired", code: 410) : nil))
        } catch {
            await reached(path, false)
            return machine.watchFailed(status: nil)
        }
    }

    private func watchOpened(_ path: String, attempt: Int) async {
        guard attempt > endedAttempts[path, default: 0] else { return }
        await reached(path, true)
    }

    /// Records whether `path` answered; tells the publisher when the source as a whole turns
    /// unreachable (any watched path failing) or reachable again.
    private func reached(_ path: String, _ answered: Bool) async {
        let wasReachable = failing.isEmpty
        if answered { failing.remove(path) } else { failing.insert(path) }
        guard failing.isEmpty != wasReachable else { return }
        await publisher.sourceReachable(failing.isEmpty)
    }

    private func listed<Object: FollowedObject>(_ items: [Object], scope: String) async {
        report(Object.replaceAll(items, in: &aggregator), kind: Object.resource)
        listed.insert(scope)
        let scopes = options.namespaces.isEmpty ? 2 : options.namespaces.count * 2
        guard listed.count == scopes else { return }
        initialPublished = true
        await publisher.replaceAll(Array(aggregator.sets.values))
    }

    private func handOver(_ changes: [EndpointChange]) async {
        guard !changes.isEmpty else { return }
        await publisher.apply(changes)
    }

    /// Lag from the EndpointSlice controller's `last-change-trigger-time` (when the pod or service
    /// changed) to the change reaching the publisher.
    private func recordLag<Object: FollowedObject>(of object: Object) {
        guard let text = object.lastChangeTriggerTime, let changed = timestampFormatter.date(from: text) else { return }
        let lag = max(0, Date().timeIntervalSince(changed))
        lagTimer.recordNanoseconds(Int64(lag * 1e9))
    }

    private let timestampFormatter = ISO8601DateFormatter()

    private func report(_ rejections: [EndpointSliceAggregator.Rejection], kind: String) {
        for rejection in rejections {
            count("legation_ingestor_malformed_objects_total", kind)
            logger.warning(
                "skipped part of a malformed object", metadata: ["object": "\(rejection.object)", "reason": "\(rejection.reason)"])
        }
    }

    private func count(_ label: String, _ kind: String, type: String? = nil) {
        counter(label, kind, type: type).increment()
    }

    private func counter(_ label: String, _ kind: String, type: String? = nil) -> Counter {
        var dimensions = [("source", source.name), ("resource", kind)]
        if let type { dimensions.append(("type", type)) }
        return metrics.counter(label, dimensions)
    }
}
