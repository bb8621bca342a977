import EnvoyAPI
import Logging
import NIOCore
import NIOHPACK
import NIOSSL
import Shared
import Synchronization
import X509

/// The hub's latest signal to one stream, posted from any thread and taken on the stream's loop.
/// Snapshots coalesce (a stream that has not run yet takes only the newest); shutdown wins.
final class SignalBox: Sendable {
    private struct State {
        var latest: XDSHub.Signal?
        var scheduled = false
    }

    private let state = Mutex(State())

    /// Stores the signal. - Returns: true when the stream's loop must be asked to take it.
    func post(_ signal: XDSHub.Signal) -> Bool {
        state.withLock { state in
            switch (state.latest, signal) {
            case (.shutdown?, _): break
            case (.snapshot(_, let arrived)?, .snapshot(let snapshot, let newer)):
                // Latency counts from the oldest change the stream had not yet been sent.
                state.latest = .snapshot(snapshot, changeArrivedAt: arrived ?? newer)
            default: state.latest = signal
            }
            defer { state.scheduled = true }
            return !state.scheduled
        }
    }

    func take() -> XDSHub.Signal? {
        state.withLock { state in
            defer { (state.latest, state.scheduled) = (nil, false) }
            return state.latest
        }
    }

    /// Keeps a signal the stream could not apply yet, unless a newer one came meanwhile.
    func putBack(_ signal: XDSHub.Signal) {
        state.withLock { state in
            if state.latest == nil { state.latest = signal }
            state.scheduled = true
        }
    }
}
