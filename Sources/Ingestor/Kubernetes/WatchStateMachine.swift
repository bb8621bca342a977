import Shared

/// The list-then-watch protocol for one resource, as a value-type state machine (no sockets): the
/// async shell reports what happened and executes the action it gets back, including what to do with
/// each watched object.
///
/// - LIST (paginated) gives the full state and a resource version; WATCH resumes from it;
/// - every event, and every bookmark, moves the resource version on;
/// - a watch that ends (server timeout, connection closed) is restarted from the last version;
/// - `410 Gone` / `Expired` (as an HTTP status or an `ERROR` event) means the version is too old:
///   relist, and the publisher sends only what really changed;
/// - other errors back off exponentially with jitter; a successful event resets the backoff.
public struct WatchStateMachine<Object: ResourceVersioned & Sendable>: Sendable {
    public enum Action: Sendable {
        /// Start a LIST (after waiting `after`); a watch in progress is abandoned.
        case list(after: Duration)
        /// Start a WATCH from this resource version (after waiting `after`); a watch in progress is
        /// abandoned.
        case watch(resourceVersion: String, after: Duration)
        /// The object was added or modified: apply it; the watch goes on.
        case upsert(Object)
        /// The object was deleted: remove it; the watch goes on.
        case delete(Object)
        /// Nothing to do (a bookmark moved the version on); the watch goes on.
        case none

        /// Whether the current watch goes on after this action.
        public var continuesWatch: Bool {
            switch self {
            case .upsert, .delete, .none: true
            case .list, .watch: false
            }
        }
    }

    public enum Phase: Sendable, Equatable { case listing, watching }

    public private(set) var phase: Phase = .listing
    public private(set) var resourceVersion: String?
    public private(set) var consecutiveFailures = 0
    public private(set) var relists = 0
    private let initialBackoff: Duration
    private let maximumBackoff: Duration

    public init(initialBackoff: Duration = .milliseconds(200), maximumBackoff: Duration = .seconds(30)) {
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
    }

    /// The first action: list.
    public func start() -> Action { .list(after: .zero) }

    /// The LIST finished with this collection resource version.
    public mutating func listSucceeded(resourceVersion: String) -> Action {
        self.resourceVersion = resourceVersion
        phase = .watching
        consecutiveFailures = 0
        return .watch(resourceVersion: resourceVersion, after: .zero)
    }

    /// The LIST failed: with `410` (a `continue` token expired), start over; otherwise back off.
    public mutating func listFailed(status: StatusObject?) -> Action {
        consecutiveFailures += 1
        return .list(after: status?.isExpired == true ? .zero : backoff())
    }

    /// An event arrived on the watch.
    public mutating func received(_ event: WatchEvent<Object>) -> Action {
        switch event {
        case .added(let object), .modified(let object), .deleted(let object):
            if let version = object.resourceVersion, !version.isEmpty { resourceVersion = version }
            consecutiveFailures = 0
            if case .deleted = event { return .delete(object) }
            return .upsert(object)
        case .bookmark(let version, _):
            resourceVersion = version
            consecutiveFailures = 0
            return .none
        case .error(let status):
            return failed(status: status)
        }
    }

    /// The watch stream ended without an error (the server's timeout, or the connection closed cleanly).
    public mutating func watchEnded() -> Action {
        guard let resourceVersion else { return relist() }
        return .watch(resourceVersion: resourceVersion, after: .zero)
    }

    /// The watch failed: an HTTP status with a Status body, a transport error (nil), or a stream that
    /// could not be parsed.
    public mutating func watchFailed(status: StatusObject?) -> Action {
        failed(status: status)
    }

    private mutating func failed(status: StatusObject?) -> Action {
        if status?.isExpired == true { return relist() }
        consecutiveFailures += 1
        guard let resourceVersion else { return .list(after: backoff()) }
        return .watch(resourceVersion: resourceVersion, after: backoff())
    }

    private mutating func relist() -> Action {
        relists += 1
        phase = .listing
        resourceVersion = nil
        return .list(after: .zero)
    }

    private func backoff() -> Duration {
        Backoff.delay(attempt: consecutiveFailures, initial: initialBackoff, maximum: maximumBackoff)
    }
}

extension WatchStateMachine.Action: Equatable where Object: Equatable {}
