import Shared
import Synchronization
import Testing

@testable import RedisStore

/// The per-source blocking reads under Redis Cluster, with scripted reads instead of Redis.
@Suite(.timeLimit(.minutes(1)))
struct ClusterStreamTailsTests {
    /// Reads that answer when the test releases them: per source, the entries to give and a gate.
    final class Script: Sendable {
        struct State {
            var pending: [SourceCluster: [CheckedContinuation<Result<[StoreChange], any Error>, Never>]] = [:]
            var started: [(SourceCluster, StreamCursor)] = []
        }
        let state = Mutex(State())

        func read(_ source: SourceCluster, _ cursor: StreamCursor) async throws -> [StoreChange] {
            let result = await withCheckedContinuation { continuation in
                state.withLock {
                    $0.started.append((source, cursor))
                    $0.pending[source, default: []].append(continuation)
                }
            }
            return try result.get()
        }

        /// Answers the oldest read of `source`. - Returns: whether one was waiting.
        @discardableResult
        func answer(_ source: SourceCluster, _ result: Result<[StoreChange], any Error>) -> Bool {
            let continuation = state.withLock { state -> CheckedContinuation<Result<[StoreChange], any Error>, Never>? in
                guard var list = state.pending[source], !list.isEmpty else { return nil }
                let first = list.removeFirst()
                state.pending[source] = list
                return first
            }
            continuation?.resume(returning: result)
            return continuation != nil
        }

        var started: [(SourceCluster, StreamCursor)] { state.withLock { $0.started } }

        func waitForReads(_ count: Int) async {
            for _ in 0..<500 where started.count < count { try? await Task.sleep(for: .milliseconds(2)) }
        }
    }

    static let a = try! SourceCluster("a")
    static let b = try! SourceCluster("b")

    static func entry(_ milliseconds: UInt64) -> StoreChange {
        StoreChange(cursor: StreamCursor(milliseconds: milliseconds, sequence: 0), revision: milliseconds, generation: "g", kind: .synced)
    }

    @Test func theFirstSourceWithChangesReturnsAtOnceAndTheOtherReadStaysInFlight() async throws {
        let script = Script()
        let tails = ClusterStreamTails { source, cursor, _, _ in try await script.read(source, cursor) }
        let cursors: [SourceCluster: StreamCursor] = [Self.a: .start, Self.b: .start]
        async let first = tails.changes(after: cursors, limit: 10, wait: .seconds(20))
        await script.waitForReads(2)
        script.answer(Self.b, .success([Self.entry(5)]))
        let got = try await first
        #expect(got.keys.sorted() == [Self.b])
        #expect(got[Self.b]?.map(\.cursor.milliseconds) == [5])

        // a's read is still the one in flight: no second read of a is started.
        async let second = tails.changes(
            after: [Self.a: .start, Self.b: StreamCursor(milliseconds: 5, sequence: 0)], limit: 10, wait: .seconds(20))
        await script.waitForReads(3)
        #expect(script.started.filter { $0.0 == Self.a }.count == 1)
        script.answer(Self.a, .success([Self.entry(7)]))
        #expect(try await second[Self.a]?.map(\.cursor.milliseconds) == [7])
        tails.close()
        script.answer(Self.b, .success([]))
    }

    @Test func aReadFromALaterCursorIsDiscardedAndOlderEntriesAreDropped() async throws {
        let script = Script()
        let tails = ClusterStreamTails { source, cursor, _, _ in try await script.read(source, cursor) }
        async let first = tails.changes(after: [Self.a: StreamCursor(milliseconds: 10, sequence: 0)], limit: 10, wait: .milliseconds(50))
        await script.waitForReads(1)
        #expect(try await first.isEmpty, "nothing within the wait")
        // The reader went back (a resync after lost data): the read from 10 cannot serve a cursor of 3.
        script.answer(Self.a, .success([Self.entry(11)]))
        try await Task.sleep(for: .milliseconds(20))
        async let second = tails.changes(after: [Self.a: StreamCursor(milliseconds: 3, sequence: 0)], limit: 10, wait: .seconds(20))
        await script.waitForReads(2)
        #expect(script.started.last?.1 == StreamCursor(milliseconds: 3, sequence: 0), "a new read from the cursor asked for")
        script.answer(Self.a, .success([Self.entry(4), Self.entry(11)]))
        #expect(try await second[Self.a]?.map(\.cursor.milliseconds) == [4, 11])

        // A read from an earlier cursor serves a later one, without what the caller has.
        async let third = tails.changes(after: [Self.a: StreamCursor(milliseconds: 11, sequence: 0)], limit: 10, wait: .seconds(20))
        await script.waitForReads(3)
        #expect(script.started.last?.1 == StreamCursor(milliseconds: 11, sequence: 0))
        script.answer(Self.a, .success([Self.entry(11), Self.entry(12)]))
        #expect(try await third[Self.a]?.map(\.cursor.milliseconds) == [12], "entries up to the cursor dropped")
        tails.close()
    }

    @Test func aFailedReadIsThrownOnceAndTheReadStartsAgain() async throws {
        let script = Script()
        let tails = ClusterStreamTails { source, cursor, _, _ in try await script.read(source, cursor) }
        let first = Task { try await tails.changes(after: [Self.a: .start], limit: 10, wait: .seconds(20)) }
        await script.waitForReads(1)
        script.answer(Self.a, .failure(StoreError(.unavailable, "node gone")))
        await #expect(throws: StoreError.self) { try await first.value }
        async let second = tails.changes(after: [Self.a: .start], limit: 10, wait: .seconds(20))
        await script.waitForReads(2)
        script.answer(Self.a, .success([Self.entry(1)]))
        #expect(try await second[Self.a]?.count == 1)
        tails.close()
    }

    @Test func anIdleWaitEndsAtItsLimitAndCancellationEndsItSooner() async throws {
        let script = Script()
        let tails = ClusterStreamTails { source, cursor, _, _ in try await script.read(source, cursor) }
        let started = ContinuousClock.now
        #expect(try await tails.changes(after: [Self.a: .start], limit: 10, wait: .milliseconds(100)).isEmpty)
        #expect(ContinuousClock.now - started >= .milliseconds(100))
        let waiting = Task { try await tails.changes(after: [Self.a: .start], limit: 10, wait: .seconds(30)) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        let cancelledAt = ContinuousClock.now
        _ = try? await waiting.value
        #expect(ContinuousClock.now - cancelledAt < .seconds(5))
        tails.close()
        script.answer(Self.a, .success([]))
    }
}
