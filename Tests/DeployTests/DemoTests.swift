import Foundation
import LegationTestSupport
import LocalProcesses
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The demo as a user runs it: `legation demo --keep-running` (the debug build, a real Envoy).
@Suite struct DemoTests {
    /// SIGTERM ends a kept-running demo as Ctrl-C does: it says so, stops its Envoy (whose admin port
    /// then refuses connections) and exits 0. Killed before, it left its Envoy running on its ports.
    @Test func aKeptRunningDemoStopsItsEnvoyOnSIGTERM() async throws {
        let binary = Repository.root.appendingPathComponent(".build/debug/legation").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build first")
        let envoy = try #require(EnvoyProcess.binary, "envoy is not installed: run scripts/install-deps.sh --e2e")
        let directory = try TemporaryDirectory(prefix: "legation-demo-test")
        defer { directory.remove() }
        let output = directory.file("demo.out")
        let demo = try ChildProcess(binary, ["demo", "--keep-running", "--envoy", envoy], outputFile: output)
        defer {
            demo.kill()
            Glibc.kill(-demo.pid, SIGKILL)  // its group, even after the demo exited: an Envoy it left behind
        }
        func printed() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
        let running = await eventually(within: .seconds(120)) { printed().contains("Running until") }
        try #require(running, "the demo did not come up:\n\(printed().suffix(3000))")
        let admin = try #require(
            printed().firstMatch(of: /curl 127\.0\.0\.1:(\d+)\/clusters/).flatMap { Int($0.1) }, "no Envoy admin port printed")
        #expect(loopbackPortAccepts(admin), "Envoy's admin port answers while the demo runs")

        // `legation status` as a user runs it: against the debug address it lists the demo's sidecar;
        // given the xDS port by mistake, it says what answered (it said "invalid constant string").
        func status(_ port: Int) async throws -> (Int32, String) {
            let file = directory.file("status-\(port).out")
            let process = try ChildProcess(binary, ["status", "--debug", "127.0.0.1:\(port)"], outputFile: file)
            let code = try await process.wait(timeout: .seconds(30))
            return (code, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
        }
        let debug = try #require(
            printed().firstMatch(of: /legation status --debug 127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) }, "no debug port printed")
        let xds = try #require(printed().firstMatch(of: /xds-server on 127\.0\.0\.1:(\d+)/).flatMap { Int($0.1) }, "no xDS port printed")
        let listed = try await status(debug)
        #expect(listed.0 == 0 && listed.1.contains("demo-sidecar") && listed.1.contains("SYNCED"), "\(listed.1)")
        let mistaken = try await status(xds)
        #expect(mistaken.0 != 0)
        #expect(mistaken.1.contains("505") && mistaken.1.contains("xDS (gRPC over HTTP/2) port"), "\(mistaken.1)")
        #expect(!mistaken.1.contains("Usage:"), "a run-time failure, not a usage error")

        Glibc.kill(demo.pid, SIGTERM)
        #expect(try await demo.wait(timeout: .seconds(30)) == 0)
        #expect(printed().contains("Stopping."))
        #expect(await eventually(within: .seconds(10)) { !loopbackPortAccepts(admin) }, "the demo's Envoy still runs")
    }
}
