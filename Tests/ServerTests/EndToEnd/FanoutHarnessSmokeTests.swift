import Foundation
import LegationTestSupport
import LocalProcesses
import Shared
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The benchmark harness's fan-out scenario, tiny, so it cannot rot: redis-server, a real
/// `legation xds-server` process and simulated sidecars in both protocol modes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FanoutHarnessSmokeTests {
    static let build = Repository.root.appendingPathComponent(".build/debug")

    @Test(arguments: [false, true])
    func aSmallFanoutRunCompletesAndReports(delta: Bool) async throws {
        let bench = Self.build.appendingPathComponent("legation-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "build first: swift build --build-tests")
        let directory = try TemporaryDirectory(prefix: "legation-fanout")
        defer { directory.remove() }
        let json = directory.file("result.json")
        let arguments =
            [
                "fanout", "--streams", "8", "--clusters", "5", "--endpoints", "4", "--updates", "3", "--interval-ms", "20",
                "--nack-every", "4", "--timeout", "120", "--output", json
            ] + (delta ? ["--delta"] : [])
        let status = try await ChildProcess(bench, arguments, outputFile: directory.file("log")).wait(timeout: .seconds(150))
        let log = (try? String(contentsOfFile: directory.file("log"), encoding: .utf8)) ?? ""
        #expect(status == 0, "\(log.suffix(2000))")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect(result["mode"] as? String == (delta ? "delta" : "sotw"))
        #expect(result["streams"] as? Int == 8)
        #expect((result["update_p99_ms"] as? Double ?? -1) >= 0)
        #expect((result["bytes_per_update"] as? Int ?? 0) > 0)
        #expect((result["server_rss_mb"] as? Double ?? 0) > 0)
        #expect((result["nacks_sent"] as? Int ?? 0) > 0, "NACK injection")
        #expect(result["stream_errors"] as? Int == 0)
    }

    /// The scenario runner, tiny: each scenario starts what it needs and writes JSON, markdown and
    /// well-formed SVG charts with the machine, the commit and the command.
    @Test(arguments: [
        ["p1", "--streams", "4,8", "--updates", "2"],
        ["p2", "--services", "20", "--endpoints", "6", "--sidecars", "8", "--new-sidecars", "3"],
        ["p3", "--services", "6", "--endpoints", "4", "--sidecars", "6", "--changes", "6", "--rate", "20"]
    ])
    func aTinyScenarioRunWritesItsReport(_ arguments: [String]) async throws {
        let bench = Self.build.appendingPathComponent("legation-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "build first: swift build --build-tests")
        let directory = try TemporaryDirectory(prefix: "legation-scenario")
        defer { directory.remove() }
        let status = try await ChildProcess(
            bench, ["scenario"] + arguments + ["--output-directory", directory.path, "--timeout", "150"],
            outputFile: directory.file("log")
        ).wait(timeout: .seconds(170))
        let log = (try? String(contentsOfFile: directory.file("log"), encoding: .utf8)) ?? ""
        #expect(status == 0, "\(log.suffix(2000))")
        let name = "\(arguments[0])-sotw"
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory.file("\(name).json")))) as? [String: Any]
        )
        #expect((json["machine"] as? String)?.contains("cores") == true)
        #expect((json["command"] as? String)?.contains("scenario \(arguments[0])") == true)
        #expect((json["commit"] as? String)?.count == 40)
        let markdown = try String(contentsOfFile: directory.file("\(name).md"), encoding: .utf8)
        #expect(markdown.contains("| ") && markdown.contains(".svg)"))
        let charts = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".svg") }
        #expect(!charts.isEmpty)
        for chart in charts {
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: directory.file(chart))))
            #expect(parser.parse(), "\(chart) is not well-formed")
        }
        if arguments[0] == "p3" {
            #expect(json["missing_deliveries"] as? Int == 0, "every change reached every sidecar")
        }
    }
}
