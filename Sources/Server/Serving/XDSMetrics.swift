import Metrics
import Shared

/// The xds-server's serving metrics (docs/configuration.md, "Metrics"). Handles are made once: a push
/// costs a few atomic increments, not a registry lookup.
public struct XDSMetrics: Sendable {
    /// Open xDS streams per pod, by kind: what the HorizontalPodAutoscaler scales on. STABLE: the
    /// deploy/ manifests and users' adapters refer to it.
    public static let streamsGauge = "legation_xds_streams"

    private struct PerType: Sendable {
        let requests: Counter
        let nacks: Counter
        let pushes: Counter
        let bytes: Counter
        let resources: Counter
    }

    private let handles: MetricHandles
    private let perType: [ResourceType: PerType]
    private let otherRequests: Counter
    private let streams: [XDSHub.StreamKind: Gauge]
    private let latency: Timer

    init(factory: any MetricsFactory) {
        self.handles = MetricHandles(factory: factory)
        var perType: [ResourceType: PerType] = [:]
        for type in ResourceType.allCases {
            let dimensions = [("type", type.shortName)]
            perType[type] = PerType(
                requests: Counter(label: "legation_xds_requests_total", dimensions: dimensions, factory: factory),
                nacks: Counter(label: "legation_xds_nacks_total", dimensions: dimensions, factory: factory),
                pushes: Counter(label: "legation_xds_pushes_total", dimensions: dimensions, factory: factory),
                bytes: Counter(label: "legation_xds_sent_bytes_total", dimensions: dimensions, factory: factory),
                resources: Counter(label: "legation_xds_sent_resources_total", dimensions: dimensions, factory: factory))
        }
        self.perType = perType
        otherRequests = Counter(label: "legation_xds_requests_total", dimensions: [("type", "other")], factory: factory)
        streams = Dictionary(
            uniqueKeysWithValues: XDSHub.StreamKind.allCases.map {
                ($0, Gauge(label: Self.streamsGauge, dimensions: [("kind", $0.rawValue)], factory: factory))
            })
        latency = Timer(label: "legation_xds_push_latency_seconds", factory: factory)
    }

    /// `legation_xds_streams{kind}`: open streams, the HPA's signal.
    func streamsChanged(_ counts: [XDSHub.StreamKind: Int]) {
        for (kind, count) in counts { streams[kind]?.record(count) }
    }

    func refused(reason: String) {
        handles.counter("legation_xds_streams_refused_total", [("reason", reason)]).increment()
    }

    func request(_ typeURL: String, nack: Bool) {
        guard let metrics = ResourceType(rawValue: typeURL).flatMap({ perType[$0] }) else {
            otherRequests.increment()
            return
        }
        metrics.requests.increment()
        if nack { metrics.nacks.increment() }
    }

    func pushed(_ type: ResourceType, bytes: Int, resources: Int) {
        guard let metrics = perType[type] else { return }
        metrics.pushes.increment()
        metrics.bytes.increment(by: bytes)
        metrics.resources.increment(by: resources)
    }

    func pushLatency(_ duration: Duration) {
        latency.recordNanoseconds(duration.nanoseconds)
    }

    /// `legation_xds_connections_closed_total{reason}`: connections this server closed for what the
    /// client did (an HTTP/2 error code's name, `not_http2`, `keepalive_timeout`, `too_many_pings`).
    func connectionClosed(reason: String) {
        handles.counter("legation_xds_connections_closed_total", [("reason", reason)]).increment()
    }

    func protocolError(_ code: XDSError.Code) {
        handles.counter("legation_xds_stream_errors_total", [("code", code.rawValue)]).increment()
    }
}
