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

    public init(
        hub: XDSHub, options: Options = Options(), logger: Logger = Logger(label: "legation.xds"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
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
            deserializer: ProtobufDeserializer<Machine.WireRequest>(),
            serializer: EncodedMessageSerializer(),
            handler: { request, context in
                try self.stream(request, context: context, kind: kind, machine: Machine(allowedTypes: types, limits: self.options.limits))
            })
    }

    private func stream<Machine: XDSStreamMachine>(
        _ request: StreamingServerRequest<Machine.WireRequest>, context: ServerContext, kind: XDSHub.StreamKind, machine initial: Machine
    ) throws -> StreamingServerResponse<EncodedMessage> {
        if let reason = hub.notReadyReason {
            metrics.refused(reason: "not_ready")
            throw RPCError(code: .unavailable, message: "not ready: \(reason)")
        }
        let inbox = StreamInbox<Machine.WireRequest>()
        let cell = XDSHub.StreamCell(initial)
        guard
            let (id, initialSnapshot) = hub.register(
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
            throw RPCError(
                code: .resourceExhausted, message: "this server has \(options.maximumStreams) xDS streams open already; try another replica"
            )
        }
        metrics.streamsChanged(hub.streamCounts)
        let identities = options.nodeIdentity == nil ? [] : Self.peerIdentities(context)
        let initialDriver = StreamDriver(
            cell: cell, snapshot: initialSnapshot, peer: context.remotePeer, identities: identities, nodeIdentity: options.nodeIdentity,
            metrics: metrics, logger: logger)
        let hub = self.hub
        let metrics = self.metrics
        let controlPlane = options.controlPlaneIdentifier
        return StreamingServerResponse { writer in
            var driver = initialDriver
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
                while let event = await inbox.next() {
                    let responses: [Machine.Response]
                    var changeArrivedAt: ContinuousClock.Instant?
                    switch event {
                    case .request(let message):
                        switch driver.receive(message) {
                        case .send(let decided): responses = decided
                        case .fail(let error): throw RPCError(code: error.code.rpcCode, message: error.message)
                        }
                    case .requestsEnded:
                        return [:]
                    case .requestsFailed(let error):
                        throw error
                    case .shutdown:
                        throw RPCError(code: .unavailable, message: XDSError.shuttingDown.message)
                    case .snapshot(let latest, let arrived):
                        changeArrivedAt = arrived
                        switch driver.refresh(latest) {
                        case .send(let decided): responses = decided
                        case .fail(let error): throw RPCError(code: error.code.rpcCode, message: error.message)
                        }
                    }
                    guard !responses.isEmpty else { continue }
                    var sizes: [Int] = []
                    for response in responses {
                        let encoded = response.encoded(controlPlane: controlPlane)
                        try await writer.write(EncodedMessage(bytes: encoded))
                        sizes.append(encoded.count)
                    }
                    driver.sent(responses, sizes: sizes, changeArrivedAt: changeArrivedAt)
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
        case .permissionDenied: .permissionDenied
        }
    }
}
