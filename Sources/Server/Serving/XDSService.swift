import AsyncAlgorithms
import EnvoyAPI
import GRPCCore
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
        let streams: [(MethodDescriptor, XDSHub.StreamKind, Set<ResourceType>)] = [
            (Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method.StreamAggregatedResources.descriptor, .ads, Set(ResourceType.allCases)),
            (Envoy_Service_Cluster_V3_ClusterDiscoveryService.Method.StreamClusters.descriptor, .cds, [.cluster]),
            (Envoy_Service_Endpoint_V3_EndpointDiscoveryService.Method.StreamEndpoints.descriptor, .eds, [.endpoint]),
        ]
        for (descriptor, kind, types) in streams {
            router.registerHandler(
                forMethod: descriptor,
                deserializer: ProtobufDeserializer<Envoy_Service_Discovery_V3_DiscoveryRequest>(),
                serializer: EncodedMessageSerializer(),
                handler: { request, context in
                    try self.stream(request, context: context, kind: kind, types: types)
                })
        }
    }

    private enum Event: Sendable {
        case request(Envoy_Service_Discovery_V3_DiscoveryRequest)
        case requestsEnded
        case signal(XDSHub.Signal)
    }

    private func stream(
        _ request: StreamingServerRequest<Envoy_Service_Discovery_V3_DiscoveryRequest>, context: ServerContext,
        kind: XDSHub.StreamKind, types: Set<ResourceType>
    ) throws -> StreamingServerResponse<EncodedMessage> {
        if let reason = hub.notReadyReason {
            metrics.refused(reason: "not_ready")
            throw RPCError(code: .unavailable, message: "not ready: \(reason)")
        }
        let (signals, continuation) = AsyncStream<XDSHub.Signal>.makeStream(bufferingPolicy: .bufferingNewest(1))
        guard let id = hub.register(
            kind: kind, peer: context.remotePeer, limit: options.maximumStreams, nowUnixMilliseconds: WallClock.nowUnixMilliseconds,
            notify: { continuation.yield($0) })
        else {
            metrics.refused(reason: "too_many_streams")
            throw RPCError(code: .resourceExhausted, message: "this server has \(options.maximumStreams) xDS streams open already; try another replica")
        }
        metrics.streamsChanged(hub.streamCounts)
        let hub = self.hub
        let options = self.options
        let metrics = self.metrics
        let logger = self.logger
        return StreamingServerResponse { writer in
            defer {
                continuation.finish()
                hub.unregister(id)
                metrics.streamsChanged(hub.streamCounts)
            }
            var machine = SotWStreamStateMachine(allowedTypes: types, limits: options.limits)
            let events = merge(
                chain(request.messages.map { Event.request($0) }, [Event.requestsEnded].async),
                signals.map { Event.signal($0) })
            for try await event in events {
                let snapshot = hub.snapshot
                let action: SotWStreamStateMachine.Action
                switch event {
                case .request(let message):
                    metrics.request(message.typeURL, nack: message.hasErrorDetail)
                    action = machine.onRequest(message, snapshot: snapshot)
                    if message.hasErrorDetail, let node = machine.node {
                        logger.warning(
                            "client rejected a response (NACK)",
                            metadata: ["node": "\(node.id)", "type": "\(message.typeURL)", "error": "\(message.errorDetail.message.prefix(512))"])
                    }
                case .requestsEnded:
                    return [:]
                case .signal(.shutdown):
                    throw RPCError(code: .unavailable, message: "the server is shutting down; reconnect to another replica")
                case .signal(.snapshot):
                    action = machine.onSnapshot(snapshot)
                }
                switch action {
                case .none:
                    hub.record(id, machine: machine)
                case .send(let responses):
                    var bytes = 0
                    for response in responses {
                        let encoded = response.encoded(controlPlane: options.controlPlaneIdentifier)
                        try await writer.write(EncodedMessage(bytes: encoded))
                        bytes += encoded.count
                        metrics.pushed(response.type, bytes: encoded.count, resources: response.resources.count)
                    }
                    if case .signal = event, let arrived = hub.changeArrivedAt {
                        metrics.pushLatency(ContinuousClock.now - arrived)
                    }
                    hub.record(id, machine: machine, pushes: responses.count, bytes: bytes)
                case .fail(let error):
                    hub.record(id, machine: machine)
                    metrics.protocolError(error.code)
                    logger.info("ending an xDS stream", metadata: ["peer": "\(context.remotePeer)", "error": "\(error)"])
                    throw RPCError(code: error.code.rpcCode, message: error.message)
                }
            }
            return [:]
        }
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
