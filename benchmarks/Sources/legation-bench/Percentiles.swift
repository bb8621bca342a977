import Foundation
import Shared

/// Percentiles of a sample in milliseconds.
struct Percentiles {
    let sorted: [Double]
    init(_ values: [Double]) { sorted = values.sorted() }
    func at(_ p: Double) -> Double { sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
    var p50: Double { at(0.5) }
    var p90: Double { at(0.9) }
    var p99: Double { at(0.99) }
    var max: Double { sorted.last ?? .nan }
    var summary: [String: Double] { ["p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max, "count": Double(sorted.count)] }
}
