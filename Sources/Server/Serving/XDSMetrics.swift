import Metrics

/// The xds-server's serving metrics (docs/configuration.md, "Metrics").
public struct XDSMetrics: Sendable {
    /// Open xDS streams per pod, by kind: what the HorizontalPodAutoscaler scales on. STABLE: the
    /// deploy/ manifests and users' adapters refer to it.
    public static let streamsGauge = "legation_xds_streams"

    let factory: any MetricsFactory

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// `legation_xds_streams{kind}`: open streams, the HPA's signal.
    func streamsChanged(_ counts: [XDSHub.StreamKind: Int]) {
        for (kind, count) in counts {
            Gauge(label: Self.streamsGauge, dimensions: [("kind", kind.rawValue)], factory: factory).record(count)
        }
    }

    func refused(reason: String) {
        Counter(label: "legation_xds_streams_refused_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    func request(_ typeURL: String, nack: Bool) {
        let type = ResourceType(rawValue: typeURL)?.shortName ?? "other"
        Counter(label: "legation_xds_requests_total", dimensions: [("type", type)], factory: factory).increment()
        if nack { Counter(label: "legation_xds_nacks_total", dimensions: [("type", type)], factory: factory).increment() }
    }

    func pushed(_ type: ResourceType, bytes: Int, resources: Int) {
        Counter(label: "legation_xds_pushes_total", dimensions: [("type", type.shortName)], factory: factory).increment()
        Counter(label: "legation_xds_sent_bytes_total", dimensions: [("type", type.shortName)], factory: factory).increment(by: bytes)
        Counter(label: "legation_xds_sent_resources_total", dimensions: [("type", type.shortName)], factory: factory).increment(by: resources)
    }

    func pushLatency(_ duration: Duration) {
        Timer(label: "legation_xds_push_latency_seconds", factory: factory).recordNanoseconds(duration.nanoseconds)
    }

    func protocolError(_ code: XDSError.Code) {
        Counter(label: "legation_xds_stream_errors_total", dimensions: [("code", code.rawValue)], factory: factory).increment()
    }
}
