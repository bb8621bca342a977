import Synchronization

/// One xDS stream's events, for its one loop: the client's requests in order, the latest snapshot, the
/// end of the requests, and shutdown.
///
/// - Snapshots coalesce: a loop that is busy sees only the newest, and a snapshot costs its loop one
///   wake-up (the hub hands it over directly; no task sits between them).
/// - Requests are bounded: the task reading them from the transport waits while `limit` are unread, so
///   a client cannot queue requests without bound.
/// - Shutdown comes before anything else waiting.
final class StreamInbox<Request: Sendable>: Sendable {
    enum Event: Sendable {
        case request(Request)
        case snapshot(ResourceSnapshot, changeArrivedAt: ContinuousClock.Instant?)
        /// The client half-closed the stream.
        case requestsEnded
        case requestsFailed(any Error)
        case shutdown
    }

    private struct State: Sendable {
        var requests: [Event] = []
        var head = 0
        var latest: (snapshot: ResourceSnapshot, changeArrivedAt: ContinuousClock.Instant?)?
        var shutdown = false
        var closed = false
        var consumer: CheckedContinuation<Event?, Never>?
        var producer: CheckedContinuation<Void, Never>?

        var unread: Int { requests.count - head }

        /// The next event, if one is waiting.
        mutating func take() -> Event? {
            if shutdown {
                shutdown = false
                closed = true
                return .shutdown
            }
            if let latest {
                self.latest = nil
                return .snapshot(latest.snapshot, changeArrivedAt: latest.changeArrivedAt)
            }
            guard head < requests.count else { return nil }
            let event = requests[head]
            head += 1
            if head == requests.count {
                requests.removeAll(keepingCapacity: true)
                head = 0
            }
            return event
        }
    }

    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int = 16) {
        self.limit = limit
    }

    /// The next event; nil once the inbox is closed (or the waiting task is cancelled).
    func next() async -> Event? {
        if let ready = state.withLock({ $0.closed ? nil : $0.take() }) {
            resumeProducerIfRoom()
            return ready
        }
        let event: Event? = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Event?, Never>) in
                let ready: Event?? = state.withLock { state in
                    if state.closed || Task.isCancelled { return .some(nil) }
                    if let event = state.take() { return .some(event) }
                    state.consumer = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiting = state.withLock { state -> CheckedContinuation<Event?, Never>? in
                defer { state.consumer = nil }
                return state.consumer
            }
            waiting?.resume(returning: nil)
        }
        resumeProducerIfRoom()
        return event
    }

    /// Hands a snapshot to the loop, replacing one it has not taken yet.
    func publish(_ snapshot: ResourceSnapshot, changeArrivedAt: ContinuousClock.Instant?) {
        deliver { state in
            // Keep the oldest arrival time: latency is measured from the first change the loop had not seen.
            let arrived = state.latest.map { $0.changeArrivedAt ?? changeArrivedAt } ?? changeArrivedAt
            state.latest = (snapshot, arrived)
        }
    }

    func shutdown() {
        deliver { $0.shutdown = true }
    }

    /// Queues a request; waits while `limit` are unread.
    func push(_ request: Request) async {
        deliver { $0.requests.append(.request(request)) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let room = state.withLock { state -> Bool in
                if state.closed || state.unread < limit { return true }
                state.producer = continuation
                return false
            }
            if room { continuation.resume() }
        }
    }

    /// The requests ended: cleanly (nil) or with an error.
    func endRequests(_ error: (any Error)?) {
        deliver { $0.requests.append(error.map { .requestsFailed($0) } ?? .requestsEnded) }
    }

    /// No more events: wakes both sides.
    func close() {
        let (consumer, producer) = state.withLock { state in
            state.closed = true
            defer { (state.consumer, state.producer) = (nil, nil) }
            return (state.consumer, state.producer)
        }
        consumer?.resume(returning: nil)
        producer?.resume()
    }

    private func deliver(_ change: (inout State) -> Void) {
        let (consumer, event) = state.withLock { state -> (CheckedContinuation<Event?, Never>?, Event?) in
            guard !state.closed else { return (nil, nil) }
            change(&state)
            guard let consumer = state.consumer, let event = state.take() else { return (nil, nil) }
            state.consumer = nil
            return (consumer, event)
        }
        consumer?.resume(returning: event)
    }

    private func resumeProducerIfRoom() {
        let producer = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let producer = state.producer, state.unread < limit else { return nil }
            state.producer = nil
            return producer
        }
        producer?.resume()
    }
}
