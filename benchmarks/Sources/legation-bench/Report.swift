import Foundation
import Shared

/// What a scenario run writes into benchmarks/results/: `<name>.json` (every figure, the machine, the
/// commit and the exact command), `<name>.md` (the human table) and SVG charts.
struct BenchReport {
    let name: String
    let directory: String
    var figures: [String: Any] = [:]
    var markdown: [String] = []
    var charts: [(file: String, svg: String)] = []

    init(name: String, directory: String) {
        self.name = name
        self.directory = directory
        figures["scenario"] = name
        figures["machine"] = Self.machine()
        figures["commit"] = FanoutBenchmark.commit()
        figures["command"] = CommandLine.arguments.joined(separator: " ")
        figures["date"] = ISO8601DateFormatter().string(from: Date())
    }

    /// "2 cores, <CPU model>, <memory> GiB".
    static func machine() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model =
            cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":", maxSplits: 1).last?
            .trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let kilobytes =
            meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal:") }.flatMap { line in
                line.split(separator: " ").dropFirst().first.flatMap { Double($0) }
            } ?? 0
        return String(format: "%d cores, %@, %.1f GiB", ProcessInfo.processInfo.activeProcessorCount, model, kilobytes / 1_048_576)
    }

    func write() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let base = URL(fileURLWithPath: directory)
        try JSONSerialization.data(withJSONObject: figures, options: [.prettyPrinted, .sortedKeys])
            .write(to: base.appendingPathComponent("\(name).json"))
        var text = [
            "# \(name)", "", "- machine: \(figures["machine"] ?? "")", "- commit: \(figures["commit"] ?? "")",
            "- command: `\(figures["command"] ?? "")`", "- date: \(figures["date"] ?? "")", ""
        ]
        text += markdown
        for chart in charts {
            try chart.svg.write(to: base.appendingPathComponent(chart.file), atomically: true, encoding: .utf8)
            text += ["", "![\(chart.file)](\(chart.file))"]
        }
        try (text.joined(separator: "\n") + "\n").write(to: base.appendingPathComponent("\(name).md"), atomically: true, encoding: .utf8)
        say("wrote \(directory)/\(name).{json,md}" + (charts.isEmpty ? "" : " and \(charts.count) chart(s)"))
    }
}
