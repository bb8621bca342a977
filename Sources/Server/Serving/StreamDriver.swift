import Logging

/// One xDS stream between its transport and its protocol machine: decoded wire requests and snapshots
/// in, the machine's action (the responses to write, or the error to end the stream with) out.
/// Synchronous and socket-free; the transport decides the order of events and owns the bytes. Metrics,
/// the node-identity check and the logs of NACKs and protocol errors live here, so every transport
/// behaves the same.
struct StreamDriver<Machine: XDSStreamMachine> {
    enum Outcome {
        case send([Machine.Response])
        case fail(XDSError)
    }

    let cell: XDSHub.StreamCell<Machine>
    let peer: String
    /// The snapshot this stream serves from: the one it registered with, then each one signalled. A
    /// request handled before a queued signal is answered from the older one; the signal's refresh then
    /// sends what changed.
    private(set) var snapshot: ResourceSnapshot
    private var identityChecked: Bool
    /// The client certificate's URI and DNS names, when node ids are bound to them.
    private let identities: [String]
    private let nodeIdentity: NodeIdentityRule?
    private let metrics: XDSMetrics
    private let logger: Logger

    init(
        cell: XDSHub.StreamCell<Machine>, snapshot: ResourceSnapshot, peer: String, identities: [String], nodeIdentity: NodeIdentityRule?,
        metrics: XDSMetrics, logger: Logger
    ) {
        self.cell = cell
        self.snapshot = snapshot
        self.peer = peer
        self.identities = identities
        self.nodeIdentity = nodeIdentity
        self.identityChecked = nodeIdentity == nil
        self.metrics = metrics
        self.logger = logger
    }

    mutating func receive(_ wire: Machine.WireRequest) -> Outcome {
        let message = Machine.request(wire)
        let (typeURL, nack) = Machine.describe(message)
        metrics.request(typeURL, nack: nack != nil)
        let snapshot = self.snapshot
        let (action, node) = cell.state.withLock { state in
            (state.machine.onRequest(message, snapshot: snapshot), state.machine.node)
        }
        if let error = action.error { return ending(error) }
        let responses = action.responses
        if !identityChecked, let rule = nodeIdentity, let node {
            identityChecked = true
            guard rule.allows(nodeID: node.id, identities: identities) else {
                metrics.refused(reason: "identity")
                let shown = identities.isEmpty ? "no URI or DNS name" : identities.prefix(4).joined(separator: ", ")
                logger.warning(
                    "refused an xDS client: its node id does not match its certificate",
                    metadata: ["peer": "\(peer)", "node": "\(node.id.prefix(256))", "identities": "\(shown.prefix(512))"])
                return .fail(
                    XDSError(
                        .permissionDenied,
                        "node id \"\(node.id.prefix(256))\" does not match the client certificate (\(shown.prefix(512))) under grpc.tls.nodeIdentity \(rule)"
                    ))
            }
        }
        if let nack, let node {
            logger.warning(
                "client rejected a response (NACK)", metadata: ["node": "\(node.id)", "type": "\(typeURL)", "error": "\(nack.prefix(512))"])
        }
        return .send(responses)
    }

    mutating func refresh(_ latest: ResourceSnapshot) -> Outcome {
        snapshot = latest
        let action = cell.state.withLock { $0.machine.onSnapshot(latest) }
        if let error = action.error { return ending(error) }
        return .send(action.responses)
    }

    private func ending(_ error: XDSError) -> Outcome {
        metrics.protocolError(error.code)
        logger.info("ending an xDS stream", metadata: ["peer": "\(peer)", "error": "\(error)"])
        return .fail(error)
    }

    /// Counts what the transport wrote. (Mutating though it changes nothing: called on a stored driver,
    /// a non-mutating call copied the whole driver first.)
    mutating func sent(_ responses: [any OutboundMessage], sizes: [Int], changeArrivedAt: ContinuousClock.Instant?) {
        var bytes = 0
        for (response, size) in zip(responses, sizes) {
            metrics.pushed(response.type, bytes: size, resources: response.resourceCount)
            bytes += size
        }
        if let changeArrivedAt { metrics.pushLatency(ContinuousClock.now - changeArrivedAt) }
        cell.state.withLock { [bytes] in
            $0.pushes += responses.count
            $0.bytesSent += bytes
        }
    }
}
