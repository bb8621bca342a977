import EnvoyAPI
import Logging
import NIOCore
import NIOHPACK
import NIOSSL
import Shared
import Synchronization
import X509

/// What the stream handler holds of a stream, whatever its machine. An enum, not an existential: each
/// case's calls are direct, so the generic session, driver and machine run specialized (through an
/// existential they ran as generic code, copying the driver and the machine's state through value
/// witnesses on every request and snapshot).
enum WireSession {
    case sotw(WireStreamSession<SotWStreamStateMachine>)
    case delta(WireStreamSession<DeltaStreamStateMachine>)

    func receive(_ message: ByteBuffer) -> WireOutcome {
        switch self {
        case .sotw(let session): session.receive(message)
        case .delta(let session): session.receive(message)
        }
    }

    func refresh(_ snapshot: ResourceSnapshot) -> WireOutcome {
        switch self {
        case .sotw(let session): session.refresh(snapshot)
        case .delta(let session): session.refresh(snapshot)
        }
    }

    func sent(_ responses: [any OutboundMessage], sizes: [Int], changeArrivedAt: ContinuousClock.Instant?) {
        switch self {
        case .sotw(let session): session.sent(responses, sizes: sizes, changeArrivedAt: changeArrivedAt)
        case .delta(let session): session.sent(responses, sizes: sizes, changeArrivedAt: changeArrivedAt)
        }
    }

    func close() {
        switch self {
        case .sotw(let session): session.close()
        case .delta(let session): session.close()
        }
    }
}

enum WireOutcome {
    case send([any OutboundMessage])
    case fail(GRPCWire.Status, String)
}

/// A registered stream: its driver, and its place in the hub until `close`.
final class WireStreamSession<Machine: XDSStreamMachine> {
    private var driver: StreamDriver<Machine>
    private var reader = RequestReader<Machine>()
    private let hub: XDSHub
    private let id: UInt64
    private var closed = false

    init?(
        _ machine: Machine, kind: XDSHub.StreamKind, shared: XDSStream.Shared, peer: String, identities: [String],
        notify: @escaping @Sendable (XDSHub.Signal) -> Void
    ) {
        let cell = XDSHub.StreamCell(machine)
        guard
            let (id, snapshot) = shared.hub.register(
                kind: kind, peer: peer, limit: shared.options.maximumStreams, nowUnixMilliseconds: WallClock.nowUnixMilliseconds,
                cell: cell,
                notify: notify)
        else { return nil }
        self.hub = shared.hub
        self.id = id
        self.driver = StreamDriver(
            cell: cell, snapshot: snapshot, peer: peer, identities: identities, nodeIdentity: shared.options.nodeIdentity,
            metrics: shared.metrics,
            logger: shared.logger)
    }

    func receive(_ message: ByteBuffer) -> WireOutcome {
        let request: Machine.WireRequest
        do {
            request = try reader.read(message, snapshot: driver.snapshot)
        } catch {
            return .fail(.invalidArgument, "the request is not a valid \(Machine.WireRequest.protoMessageName): \(error)")
        }
        switch driver.receive(request) {
        case .send(let responses): return .send(responses)
        case .fail(let error): return .fail(GRPCWire.Status(error.code), error.message)
        }
    }

    func refresh(_ snapshot: ResourceSnapshot) -> WireOutcome {
        switch driver.refresh(snapshot) {
        case .send(let responses): return .send(responses)
        case .fail(let error): return .fail(GRPCWire.Status(error.code), error.message)
        }
    }

    func sent(_ responses: [any OutboundMessage], sizes: [Int], changeArrivedAt: ContinuousClock.Instant?) {
        driver.sent(responses, sizes: sizes, changeArrivedAt: changeArrivedAt)
    }

    func close() {
        guard !closed else { return }
        closed = true
        hub.unregister(id)
    }
}
