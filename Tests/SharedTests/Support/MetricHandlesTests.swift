import MetricsTestKit
import Shared
import Testing

@Suite struct MetricHandlesTests {
    @Test func eachSeriesIsMadeOnceAndCountsTogether() throws {
        let metrics = TestMetrics()
        let handles = MetricHandles(factory: metrics)
        for _ in 0..<3 { handles.counter("legation_test_total", [("source", "east")]).increment() }
        handles.counter("legation_test_total", [("source", "west")]).increment()
        #expect(
            handles.counter("legation_test_total", [("source", "east")]) === handles.counter("legation_test_total", [("source", "east")]))
        #expect(try metrics.expectCounter("legation_test_total", [("source", "east")]).totalValue == 3)
        #expect(try metrics.expectCounter("legation_test_total", [("source", "west")]).totalValue == 1)
        handles.gauge("legation_test_gauge").record(7)
        handles.timer("legation_test_seconds", unit: .seconds).recordNanoseconds(5)
        #expect(handles.gauge("legation_test_gauge") === handles.gauge("legation_test_gauge"))
        #expect(handles.timer("legation_test_seconds") === handles.timer("legation_test_seconds"))
    }
}
