import Shared
import Synchronization

/// A stream's cell, whatever its machine.
protocol StreamCellReading: Sendable {
    /// The stream as `/debug/clients` shows it, compared with `snapshot`, and its counters.
    func current(snapshot: ResourceSnapshot) -> (debug: StreamDebugRecord, pushes: Int, bytesSent: Int)
}

/// What the serving side shares: the current snapshot, readiness, and every open stream (for fan-out
/// and for `/debug/clients`). Streams read the snapshot; the pipeline publishes it; nothing here blocks.
public final class XDSHub: Sendable {
    /// A signal to a stream's loop. Signals coalesce: a stream that is busy sees only the latest.
    public enum Signal: Sendable {
        /// A new snapshot, and when its oldest change reached the server (push latency starts there).
        case snapshot(ResourceSnapshot, changeArrivedAt: ContinuousClock.Instant?)
        case shutdown
    }

    /// What a stream's loop owns: its protocol machine and its counters. The loop mutates the machine in
    /// place under an uncontended lock, so recording costs no copy; `/debug/clients` asks the machine
    /// for a small record of itself when it is read, and never holds the machine.
    final class StreamCell<Machine: XDSStreamMachine>: StreamCellReading {
        struct State {
            var machine: Machine
            var pushes = 0
            var bytesSent = 0
        }

        let state: Mutex<State>

        init(_ machine: Machine) { state = Mutex(State(machine: machine)) }

        func current(snapshot: ResourceSnapshot) -> (debug: StreamDebugRecord, pushes: Int, bytesSent: Int) {
            state.withLock { ($0.machine.debugRecord(current: snapshot), $0.pushes, $0.bytesSent) }
        }
    }

    /// The kind of stream: aggregated or one type.
    public enum StreamKind: String, Sendable, CaseIterable, Codable {
        case ads
        case cds
        case eds
        case adsDelta = "ads_delta"
        case cdsDelta = "cds_delta"
        case edsDelta = "eds_delta"
    }

    /// One open stream, as `/debug/clients` shows it: read from its cell when asked.
    public struct StreamRecord: Sendable {
        public var id: UInt64
        public var kind: StreamKind
        public var peer: String
        public var connectedAtUnixMilliseconds: Int64
        /// What the stream holds and has done, per type.
        public var debug: StreamDebugRecord
        public var pushes = 0
        public var bytesSent = 0
    }

    private struct Registration: Sendable {
        var id: UInt64
        var kind: StreamKind
        var peer: String
        var connectedAtUnixMilliseconds: Int64
        var cell: any StreamCellReading
    }

    private struct State: Sendable {
        var snapshot = ResourceSnapshot.empty
        /// When the oldest change in `snapshot` reached the server (push latency is measured from it).
        var changeArrivedAt: ContinuousClock.Instant?
        var notReadyReason: String? = "the store has not been read yet"
        var streams: [UInt64: Registration] = [:]
        /// Each stream's `notify`, apart: a change reaches every stream without copying registrations.
        var notifiers: [UInt64: @Sendable (Signal) -> Void] = [:]
        /// Open streams by kind, kept as streams come and go (read on every change for the metric).
        var counts: [StreamKind: Int] = Dictionary(uniqueKeysWithValues: StreamKind.allCases.map { ($0, 0) })
        var nextID: UInt64 = 0
        var shuttingDown = false
    }

    private let state = Mutex(State())

    public init() {}

    /// The snapshot streams serve from now.
    public var snapshot: ResourceSnapshot { state.withLock { $0.snapshot } }

    /// When the changes in the current snapshot arrived.
    public var changeArrivedAt: ContinuousClock.Instant? { state.withLock { $0.changeArrivedAt } }

    /// nil when streams are accepted; else why not (answered with UNAVAILABLE).
    public var notReadyReason: String? { state.withLock { $0.shuttingDown ? "the server is shutting down" : $0.notReadyReason } }

    public func setReady(_ reason: String?) {
        state.withLock { $0.notReadyReason = reason }
    }

    /// Makes `snapshot` current and wakes every stream.
    public func publish(_ snapshot: ResourceSnapshot, changeArrivedAt: ContinuousClock.Instant?) {
        let notifiers = state.withLock { state -> [@Sendable (Signal) -> Void] in
            state.snapshot = snapshot
            state.changeArrivedAt = changeArrivedAt
            return Array(state.notifiers.values)
        }
        for notify in notifiers { notify(.snapshot(snapshot, changeArrivedAt: changeArrivedAt)) }
    }

    /// Ends every stream (UNAVAILABLE, so clients reconnect to another replica) and refuses new ones.
    public func shutdown() {
        let notifiers = state.withLock { state -> [@Sendable (Signal) -> Void] in
            state.shuttingDown = true
            return Array(state.notifiers.values)
        }
        for notify in notifiers { notify(.shutdown) }
    }

    /// Registers a stream. - Returns: its id and the snapshot to start from (later ones come as
    /// signals), or nil when `limit` streams are open already.
    func register(
        kind: StreamKind, peer: String, limit: Int, nowUnixMilliseconds: Int64, cell: any StreamCellReading,
        notify: @escaping @Sendable (Signal) -> Void
    ) -> (id: UInt64, snapshot: ResourceSnapshot)? {
        state.withLock { state in
            guard state.streams.count < limit else { return nil }
            state.nextID += 1
            let id = state.nextID
            state.streams[id] = Registration(
                id: id, kind: kind, peer: peer, connectedAtUnixMilliseconds: nowUnixMilliseconds, cell: cell)
            state.notifiers[id] = notify
            state.counts[kind, default: 0] += 1
            return (id, state.snapshot)
        }
    }

    func unregister(_ id: UInt64) {
        state.withLock { state in
            if let removed = state.streams.removeValue(forKey: id) { state.counts[removed.kind, default: 0] -= 1 }
            state.notifiers[id] = nil
        }
    }

    /// Every open stream, by id, with its state as of now.
    public var streams: [StreamRecord] {
        let (registrations, snapshot) = state.withLock { (Array($0.streams.values), $0.snapshot) }
        return registrations.sorted { $0.id < $1.id }.map { registration in
            let current = registration.cell.current(snapshot: snapshot)
            return StreamRecord(
                id: registration.id, kind: registration.kind, peer: registration.peer,
                connectedAtUnixMilliseconds: registration.connectedAtUnixMilliseconds, debug: current.debug, pushes: current.pushes,
                bytesSent: current.bytesSent)
        }
    }

    /// Open streams by kind (the HPA's signal).
    public var streamCounts: [StreamKind: Int] {
        state.withLock { $0.counts }
    }
}
