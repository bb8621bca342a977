import Shared
import Synchronization

/// Waiting for changes under Redis Cluster. A blocking `XREAD` may name streams of one slot only, and
/// every source's stream has its own slot, so there is one blocking read per source, each on a
/// connection of its own to the source's node. A read outlives the call that started it: when any
/// source has changes the call returns them at once, and the other reads stay in flight for the next
/// call (their results are kept until it comes). A read's result is used only if it started from the
/// cursor the next call asks for, or an earlier one (its entries up to that cursor are dropped); one
/// that started later (the reader went back, after lost data) is thrown away.
final class ClusterStreamTails: Sendable {
    /// Reads one source's changes after a cursor, blocking up to the given time.
    typealias Read =
        @Sendable (_ source: SourceCluster, _ after: StreamCursor, _ limit: Int, _ block: Duration) async throws -> [StoreChange]

    private struct State {
        /// The cursor each source's read in flight started from.
        var reading: [SourceCluster: StreamCursor] = [:]
        var completed: [SourceCluster: (cursor: StreamCursor, result: Result<[StoreChange], any Error>)] = [:]
        var tasks: [SourceCluster: Task<Void, Never>] = [:]
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        var closed = false
    }

    private let state = Mutex(State())
    private let read: Read

    init(read: @escaping Read) {
        self.read = read
    }

    /// Changes after each cursor; waits up to `wait` for the first when there are none.
    func changes(after cursors: [SourceCluster: StreamCursor], limit: Int, wait: Duration) async throws -> [SourceCluster: [StoreChange]] {
        startReads(cursors, limit: limit, block: wait)
        if let ready = try take(cursors) { return ready }
        startReads(cursors, limit: limit, block: wait)  // again for sources whose result `take` discarded
        await waitForCompletion(of: Set(cursors.keys), upTo: wait)
        return try take(cursors) ?? [:]
    }

    /// Cancels every read in flight.
    func close() {
        let (tasks, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.tasks = [:]
                state.waiters = [:]
            }
            return (Array(state.tasks.values), Array(state.waiters.values))
        }
        tasks.forEach { $0.cancel() }
        waiters.forEach { $0.resume() }
    }

    /// Starts a read for each source that has none in flight and no result waiting.
    private func startReads(_ cursors: [SourceCluster: StreamCursor], limit: Int, block: Duration) {
        state.withLock { state in
            guard !state.closed else { return }
            for (source, cursor) in cursors where state.reading[source] == nil && state.completed[source] == nil {
                state.reading[source] = cursor
                let read = self.read
                state.tasks[source] = Task { [weak self] in
                    let result: Result<[StoreChange], any Error>
                    do { result = .success(try await read(source, cursor, limit, block)) } catch { result = .failure(error) }
                    self?.finished(source, cursor: cursor, result: result)
                }
            }
        }
    }

    private func finished(_ source: SourceCluster, cursor: StreamCursor, result: Result<[StoreChange], any Error>) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.reading[source] = nil
            state.tasks[source] = nil
            state.completed[source] = (cursor, result)
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    /// The usable results for `cursors`, removed from the state; nil when there are none. Throws the
    /// first failed read's error (the other results stay for the next call).
    private func take(_ cursors: [SourceCluster: StreamCursor]) throws -> [SourceCluster: [StoreChange]]? {
        try state.withLock { state in
            var ready: [SourceCluster: [StoreChange]] = [:]
            for (source, cursor) in cursors {
                guard let done = state.completed[source] else { continue }
                if case .failure(let error) = done.result {
                    state.completed[source] = nil
                    throw error
                }
                state.completed[source] = nil
                guard done.cursor <= cursor, case .success(let entries) = done.result else { continue }
                let fresh = entries.filter { $0.cursor > cursor }
                if !fresh.isEmpty { ready[source] = fresh }
            }
            return ready.isEmpty ? nil : ready
        }
    }

    /// Returns when a read of one of `sources` completes, after `limit`, or when the task is cancelled.
    private func waitForCompletion(of sources: Set<SourceCluster>, upTo limit: Duration) async {
        let id = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timer = Task { [weak self] in
            try? await Task.sleep(for: limit)
            self?.resume(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let registered = state.withLock { state -> Bool in
                    let anyDone = sources.contains { state.completed[$0] != nil }
                    let anyReading = sources.contains { state.reading[$0] != nil }
                    guard !state.closed, !anyDone, anyReading else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !registered { continuation.resume() }
            }
        } onCancel: {
            self.resume(id)
        }
        timer.cancel()
    }

    private func resume(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}
