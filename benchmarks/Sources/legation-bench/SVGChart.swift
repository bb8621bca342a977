import Foundation
import Shared

/// Small hand-written SVG line charts: no dependency, readable in any browser or on GitHub.
enum SVGChart {
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]

    /// Lines through points, with axes, ticks, labels and a legend; `logX` for N = 1k…10k.
    static func lines(
        title: String, xLabel: String, yLabel: String, series: [(name: String, points: [(Double, Double)])], logX: Bool = false,
        target: (label: String, y: Double)? = nil
    ) -> String {
        let width = 640.0
        let height = 400.0
        let left = 70.0
        let right = 20.0
        let top = 40.0
        let bottom = 50.0
        let xs = series.flatMap { $0.points.map(\.0) }
        let ys = series.flatMap { $0.points.map(\.1) } + (target.map { [$0.y] } ?? [])
        guard let minX0 = xs.min(), let maxX0 = xs.max(), let maxY0 = ys.max() else { return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>" }
        let fx: (Double) -> Double = logX ? { log10(Swift.max($0, 1e-9)) } : { $0 }
        let minX = fx(minX0)
        let maxX = fx(maxX0) == minX ? minX + 1 : fx(maxX0)
        let maxY = niceCeiling(maxY0 * 1.05)
        func px(_ x: Double) -> Double { left + (fx(x) - minX) / (maxX - minX) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - y / maxY * (height - top - bottom) }
        var svg = [
            ##"<svg xmlns="http://www.w3.org/2000/svg" width="\##(Int(width))" height="\##(Int(height))" font-family="sans-serif" font-size="12">"##,
            ##"<rect width="100%" height="100%" fill="white"/>"##,
            ##"<text x="\##(width / 2)" y="20" text-anchor="middle" font-size="14">\##(escape(title))</text>"##
        ]
        // Axes and ticks.
        svg.append(##"<line x1="\##(left)" y1="\##(height - bottom)" x2="\##(width - right)" y2="\##(height - bottom)" stroke="black"/>"##)
        svg.append(##"<line x1="\##(left)" y1="\##(top)" x2="\##(left)" y2="\##(height - bottom)" stroke="black"/>"##)
        for i in 0...5 {
            let y = maxY * Double(i) / 5
            svg.append(##"<line x1="\##(left - 4)" y1="\##(py(y))" x2="\##(width - right)" y2="\##(py(y))" stroke="#ddd"/>"##)
            svg.append(##"<text x="\##(left - 6)" y="\##(py(y) + 4)" text-anchor="end">\##(format(y))</text>"##)
        }
        let xTicks = Array(Set(xs)).sorted()
        for x in (xTicks.count <= 8 ? xTicks : stride(from: 0, through: 5, by: 1).map { minX0 + (maxX0 - minX0) * Double($0) / 5 }) {
            svg.append(##"<text x="\##(px(x))" y="\##(height - bottom + 16)" text-anchor="middle">\##(format(x))</text>"##)
        }
        svg.append(##"<text x="\##((left + width - right) / 2)" y="\##(height - 10)" text-anchor="middle">\##(escape(xLabel))</text>"##)
        svg.append(
            ##"<text x="16" y="\##((top + height - bottom) / 2)" text-anchor="middle" transform="rotate(-90 16 \##((top + height - bottom) / 2))">\##(escape(yLabel))</text>"##
        )
        if let target {
            svg.append(
                ##"<line x1="\##(left)" y1="\##(py(target.y))" x2="\##(width - right)" y2="\##(py(target.y))" stroke="#888" stroke-dasharray="6 4"/>"##
            )
            svg.append(
                ##"<text x="\##(width - right - 4)" y="\##(py(target.y) - 4)" text-anchor="end" fill="#555">\##(escape(target.label))</text>"##
            )
        }
        for (index, line) in series.enumerated() {
            let color = colors[index % colors.count]
            let path = line.points.map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
            svg.append(##"<polyline fill="none" stroke="\##(color)" stroke-width="2" points="\##(path)"/>"##)
            if line.points.count <= 12 {
                for point in line.points { svg.append(##"<circle cx="\##(px(point.0))" cy="\##(py(point.1))" r="3" fill="\##(color)"/>"##) }
            }
            svg.append(##"<rect x="\##(left + 10)" y="\##(top + 6 + Double(index) * 16)" width="10" height="10" fill="\##(color)"/>"##)
            svg.append(##"<text x="\##(left + 26)" y="\##(top + 15 + Double(index) * 16)">\##(escape(line.name))</text>"##)
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    /// Cumulative distributions of latency samples (ms): x latency, y fraction of samples ≤ x.
    static func cdf(title: String, series: [(name: String, samples: [Double])], target: Double? = nil) -> String {
        let curves = series.map { line -> (name: String, points: [(Double, Double)]) in
            let sorted = line.samples.sorted()
            // At most ~200 points per curve.
            let step = Swift.max(1, sorted.count / 200)
            var points: [(Double, Double)] = [(0, 0)]
            for index in stride(from: 0, to: sorted.count, by: step) {
                points.append((sorted[index], Double(index + 1) / Double(sorted.count) * 100))
            }
            if let last = sorted.last { points.append((last, 100)) }
            return (line.name, points)
        }
        var svg = lines(title: title, xLabel: "latency (ms)", yLabel: "% of deliveries at or below", series: curves)
        if let target {
            svg = svg.replacingOccurrences(
                of: "</svg>",
                with: ##"<text x="630" y="390" text-anchor="end" fill="#555">target p99 ≤ \##(format(target)) ms</text></svg>"##)
        }
        return svg
    }

    static func niceCeiling(_ value: Double) -> Double {
        guard value > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(value)))
        for factor in [1.0, 2, 2.5, 5, 10] where factor * magnitude >= value { return factor * magnitude }
        return 10 * magnitude
    }

    static func format(_ value: Double) -> String {
        if value >= 1000, value.truncatingRemainder(dividingBy: 1000) == 0 { return "\(Int(value / 1000))k" }
        if value == value.rounded() { return String(Int(value)) }
        return String(format: value < 10 ? "%.2f" : "%.1f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(
            of: ">", with: "&gt;")
    }
}
