import Foundation
import LegationTestSupport
import Shared
import Testing

/// The benchmark harness's fan-out scenario, tiny, so it cannot rot: redis-server, a real
/// `legation xds-server` process and simulated sidecars in both protocol modes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FanoutHarnessSmokeTests {
    static let build = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug")

    @Test(arguments: [false, true])
    func aSmallFanoutRunCompletesAndReports(delta: Bool) async throws {
        let bench = Self.build.appendingPathComponent("legation-bench").path
        try #require(FileManager.default.isExecutableFile(atPath: bench), "build first: swift build --build-tests")
        let directory = try TemporaryDirectory(prefix: "legation-fanout")
        defer { directory.remove() }
        let json = directory.file("result.json")
        let arguments = ["fanout", "--streams", "8", "--clusters", "5", "--endpoints", "4", "--updates", "3", "--interval-ms", "20",
                         "--timeout", "120", "--output", json] + (delta ? ["--delta"] : [])
        let status = try await ChildProcess(bench, arguments, outputFile: directory.file("log")).wait(timeout: .seconds(150))
        let log = (try? String(contentsOfFile: directory.file("log"), encoding: .utf8)) ?? ""
        #expect(status == 0, "\(log.suffix(2000))")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        #expect(result["mode"] as? String == (delta ? "delta" : "sotw"))
        #expect(result["streams"] as? Int == 8)
        #expect((result["update_p99_ms"] as? Double ?? -1) >= 0)
        #expect((result["bytes_per_update"] as? Int ?? 0) > 0)
        #expect((result["server_rss_mb"] as? Double ?? 0) > 0)
    }
}
