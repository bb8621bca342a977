import Metrics
import Synchronization

/// Metric handles made once per (label, dimensions) and reused. Making a handle asks the metrics
/// backend's registry (a lock and a lookup each time); paths that report per event or per source ask
/// here instead, and the backend sees each series once.
public final class MetricHandles: Sendable {
    private struct Key: Hashable {
        var label: String
        var dimensions: [String]

        init(_ label: String, _ dimensions: [(String, String)]) {
            self.label = label
            self.dimensions = dimensions.flatMap { [$0.0, $0.1] }
        }
    }

    private struct Handles {
        var counters: [Key: Counter] = [:]
        var gauges: [Key: Gauge] = [:]
        var timers: [Key: Timer] = [:]
    }

    public let factory: any MetricsFactory
    private let handles = Mutex(Handles())

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    public func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
        let key = Key(label, dimensions)
        return handles.withLock { handles in
            if let counter = handles.counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions, factory: factory)
            handles.counters[key] = counter
            return counter
        }
    }

    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> Gauge {
        let key = Key(label, dimensions)
        return handles.withLock { handles in
            if let gauge = handles.gauges[key] { return gauge }
            let gauge = Gauge(label: label, dimensions: dimensions, factory: factory)
            handles.gauges[key] = gauge
            return gauge
        }
    }

    public func timer(_ label: String, _ dimensions: [(String, String)] = [], unit: TimeUnit? = nil) -> Timer {
        let key = Key(label, dimensions)
        return handles.withLock { handles in
            if let timer = handles.timers[key] { return timer }
            let timer =
                unit.map { Timer(label: label, dimensions: dimensions, preferredDisplayUnit: $0, factory: factory) }
                ?? Timer(label: label, dimensions: dimensions, factory: factory)
            handles.timers[key] = timer
            return timer
        }
    }
}
