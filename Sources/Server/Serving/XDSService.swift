import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Logging
import Metrics
import Shared

/// The xDS gRPC services: ADS (`StreamAggregatedResources`) and the standalone cluster and endpoint
/// discovery services, state of the world. Each stream runs `SotWStreamStateMachine` in one loop that
/// takes requests and snapshot signals in turn, and writes the bytes it decides to send.
///
/// A stream ends when the client closes it, on a protocol error (with the status from `XDSError`), or
/// at shutdown (UNAVAILABLE, so the client reconnects to another replica).
public struct XDSService: RegistrableRPCService {
    public struct Options: Sendable {
        /// Most open xDS streams on this process; more are refused with RESOURCE_EXHAUSTED.
        public var maximumStreams = 10_000
        public var limits = StreamLimits()
        /// Sent as `control_plane.identifier` in every response.
        public var controlPlaneIdentifier = ""
        /// With mutual TLS: the node id each client sends must match its certificate's identity.
        public var nodeIdentity: NodeIdentityRule?
        public init() {}
    }

    private let hub: XDSHub
    private let options: Options
    private let logger: Logger
    private let metrics: XDSMetrics

    public init(hub: XDSHub, options: Options = Options(), logger: Logger = Logger(label: "legation.xds"), metricsFactory: any MetricsFactory = MetricsSystem.factory) {
        self.hub = hub
        self.options = options
        self.logger = logger
        self.metrics = XDSMetrics(factory: metricsFactory)
    }

    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        typealias ADS = Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method
        typealias CDS = Envoy_Service_Cluster_V3_ClusterDiscoveryService.Method
        typealias EDS = Envoy_Service_Endpoint_V3_EndpointDiscoveryService.Method
        let all = Set(ResourceType.allCases)
        register(SotWStreamStateMachine.self, ADS.StreamAggregatedResources.descriptor, .ads, all, &router)
        register(SotWStreamStateMachine.self, CDS.StreamClusters.descriptor, .cds, [.cluster], &router)
        register(SotWStreamStateMachine.self, EDS.StreamEndpoints.descriptor, .eds, [.endpoint], &router)
        register(DeltaStreamStateMachine.self, ADS.DeltaAggregatedResources.descriptor, .adsDelta, all, &router)
        register(DeltaStreamStateMachine.self, CDS.DeltaClusters.descriptor, .cdsDelta, [.cluster], &router)
        register(DeltaStreamStateMachine.self, EDS.DeltaEndpoints.descriptor, .edsDelta, [.endpoint], &router)
    }

    private func register<Machine: XDSStreamMachine, Transport: ServerTransport>(
        _ machine: Machine.Type, _ descriptor: MethodDescriptor, _ kind: XDSHub.StreamKind, _ types: Set<ResourceType>,
        _ router: inout RPCRouter<Transport>
    ) {
        router.registerHandler(
            forMethod: descriptor,
            deserializer: ProtobufDeserializer<Machine.Request>(),
            serializer: EncodedMessageSerializer(),
            handler: { request, context in
                try self.stream(request, context: context, kind: kind, machine: Machine(allowedTypes: types, limits: self.options.limits))
            })
    }

    private func stream<Machine: XDSStreamMachine>(
        _ request: StreamingServerRequest<Machine.Request>, context: ServerContext, kind: XDSHub.StreamKind, machine initial: Machine
    ) throws -> StreamingServerResponse<EncodedMessage> {
        if let reason = hub.notReadyReason {
            metrics.refused(reason: "not_ready")
            throw RPCError(code: .unavailable, message: "not ready: \(reason)")
        }
        let inbox = StreamInbox<Machine.Request>()
        let cell = XDSHub.StreamCell(initial)
        guard let (id, initialSnapshot) = hub.register(
            kind: kind, peer: context.remotePeer, limit: options.maximumStreams, nowUnixMilliseconds: WallClock.nowUnixMilliseconds,
            cell: cell,
            notify: { signal in
                switch signal {
                case .snapshot(let snapshot, let changeArrivedAt): inbox.publish(snapshot, changeArrivedAt: changeArrivedAt)
                case .shutdown: inbox.shutdown()
                }
            })
        else {
            metrics.refused(reason: "too_many_streams")
            throw RPCError(code: .resourceExhausted, message: "this server has \(options.maximumStreams) xDS streams open already; try another replica")
        }
        metrics.streamsChanged(hub.streamCounts)
        // The client certificate's SANs, when node ids are bound to them (checked on the first request).
        let identities = options.nodeIdentity == nil ? [] : Self.peerIdentities(context)
        let hub = self.hub
        let options = self.options
        let metrics = self.metrics
        let logger = self.logger
        return StreamingServerResponse { writer in
            defer {
                inbox.close()
                hub.unregister(id)
                metrics.streamsChanged(hub.streamCounts)
            }
            return try await withThrowingDiscardingTaskGroup { group in
                // Requests go through the inbox, which holds at most a few: one task reads them.
                group.addTask {
                    do {
                        for try await message in request.messages { await inbox.push(message) }
                        inbox.endRequests(nil)
                    } catch {
                        inbox.endRequests(error)
                    }
                }
                defer {
                    inbox.close()
                    group.cancelAll()
                }
                // The snapshot this stream serves from: the one it registered with, then each one signalled.
                // A request handled before a queued signal is answered from the older one; the signal's
                // refresh then sends what changed.
                var snapshot = initialSnapshot
                var identityChecked = options.nodeIdentity == nil
                while let event = await inbox.next() {
                    let responses: [Machine.Response]
                    var changeArrivedAt: ContinuousClock.Instant?
                    switch event {
                    case .request(let message):
                        let (typeURL, nack) = Machine.describe(message)
                        metrics.request(typeURL, nack: nack != nil)
                        let (result, node) = cell.state.withLock { state in
                            (state.machine.receive(message, snapshot: snapshot), state.machine.node)
                        }
                        switch result {
                        case .success(let decided):
                            responses = decided
                            if !identityChecked, let rule = options.nodeIdentity, let node {
                                identityChecked = true
                                guard rule.allows(nodeID: node.id, identities: identities) else {
                                    metrics.refused(reason: "identity")
                                    let shown = identities.isEmpty ? "no URI or DNS name" : identities.prefix(4).joined(separator: ", ")
                                    logger.warning(
                                        "refused an xDS client: its node id does not match its certificate",
                                        metadata: ["peer": "\(context.remotePeer)", "node": "\(node.id.prefix(256))", "identities": "\(shown.prefix(512))"])
                                    throw RPCError(
                                        code: .permissionDenied,
                                        message: "node id \"\(node.id.prefix(256))\" does not match the client certificate (\(shown.prefix(512))) under grpc.tls.nodeIdentity \(rule)")
                                }
                            }
                        case .failure(let error):
                            metrics.protocolError(error.code)
                            logger.info("ending an xDS stream", metadata: ["peer": "\(context.remotePeer)", "error": "\(error)"])
                            throw RPCError(code: error.code.rpcCode, message: error.message)
                        }
                        if let nack, let node {
                            logger.warning(
                                "client rejected a response (NACK)",
                                metadata: ["node": "\(node.id)", "type": "\(typeURL)", "error": "\(nack.prefix(512))"])
                        }
                    case .requestsEnded:
                        return [:]
                    case .requestsFailed(let error):
                        throw error
                    case .shutdown:
                        throw RPCError(code: .unavailable, message: "the server is shutting down; reconnect to another replica")
                    case .snapshot(let latest, let arrived):
                        snapshot = latest
                        changeArrivedAt = arrived
                        responses = cell.state.withLock { $0.machine.refresh(latest) }
                    }
                    guard !responses.isEmpty else { continue }
                    var bytes = 0
                    for response in responses {
                        let encoded = response.encoded(controlPlane: options.controlPlaneIdentifier)
                        try await writer.write(EncodedMessage(bytes: encoded))
                        bytes += encoded.count
                        metrics.pushed(response.type, bytes: encoded.count, resources: response.resourceCount)
                    }
                    if let changeArrivedAt { metrics.pushLatency(ContinuousClock.now - changeArrivedAt) }
                    cell.state.withLock { [bytes] in
                        $0.pushes += responses.count
                        $0.bytesSent += bytes
                    }
                }
                return [:]
            }
        }
    }
}

extension XDSService {
    /// The URI and DNS names of the client's TLS certificate (none without mutual TLS).
    static func peerIdentities(_ context: ServerContext) -> [String] {
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context, let certificate = transport.peerCertificate
        else { return [] }
        return NodeIdentityRule.identities(of: certificate)
    }
}

extension XDSError.Code {
    var rpcCode: RPCError.Code {
        switch self {
        case .invalidArgument: .invalidArgument
        case .resourceExhausted: .resourceExhausted
        case .unavailable: .unavailable
        }
    }
}
