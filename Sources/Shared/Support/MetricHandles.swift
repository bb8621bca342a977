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
        handle(\.counters, label, dimensions) { Counter(label: label, dimensions: dimensions, factory: factory) }
    }

    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> Gauge {
        handle(\.gauges, label, dimensions) { Gauge(label: label, dimensions: dimensions, factory: factory) }
    }

    public func timer(_ label: String, _ dimensions: [(String, String)] = [], unit: TimeUnit? = nil) -> Timer {
        handle(\.timers, label, dimensions) {
            unit.map { Timer(label: label, dimensions: dimensions, preferredDisplayUnit: $0, factory: factory) }
                ?? Timer(label: label, dimensions: dimensions, factory: factory)
        }
    }

    /// The handle in `table` for (label, dimensions), made by `make` the first time.
    private func handle<Handle: Sendable>(
        _ table: WritableKeyPath<Handles, [Key: Handle]>, _ label: String, _ dimensions: [(String, String)], make: () -> Handle
    ) -> Handle {
        let key = Key(label, dimensions)
        return handles.withLock { handles in
            if let made = handles[keyPath: table][key] { return made }
            let made = make()
            handles[keyPath: table][key] = made
            return made
        }
    }
}
