import Foundation
import LocalProcesses
import Shared

/// A real `redis-server` (Debian's) on a free loopback port, started for one test and stopped after it.
/// Without persistence unless asked; `restart()` keeps the port so clients can reconnect.
public final class RedisServer: @unchecked Sendable {
    public struct Options: Sendable {
        /// Serve TLS (on the only port) with these certificates.
        public var tls: TestCertificates?
        /// Require client certificates (`tls-auth-clients yes`).
        public var requireClientCertificates = false
        /// Extra `user` lines for the ACL, e.g. `user ingestor on >secret ~legation:* +@all`.
        public var aclUsers: [String] = []
        /// Password of the `default` user; nil = no password.
        public var defaultPassword: String?
        /// Keep data in an append-only file across `restart()`.
        public var appendOnly = false
        /// More configuration lines (`replicaof …`, `cluster-enabled yes`, `sentinel monitor …`).
        public var extraConfiguration: [String] = []
        /// Run as a sentinel (`--sentinel`): only `port`, `bind`, `dir`, `logfile` and the extra lines.
        public var sentinel = false
        public init() {}
    }

    public private(set) var port: Int
    public let options: Options
    private let directory: TemporaryDirectory
    private var process: ChildProcess?

    /// Starts a server and waits until it accepts connections.
    /// - Throws: if `redis-server` is not installed (install Debian's `redis-server`) or does not start.
    public init(_ options: Options = Options()) async throws {
        self.options = options
        self.port = try freeLoopbackPort()
        self.directory = try TemporaryDirectory(prefix: "legation-redis")
        // A free port can be taken by a parallel test between probing and binding: try another.
        for attempt in 1...5 {
            do {
                try await start()
                return
            } catch let error as TestSupportError where error.description.contains("in use") && attempt < 5 {
                port = try freeLoopbackPort()
            }
        }
    }

    deinit {
        process?.kill()
        directory.remove()
    }

    /// A URL for this server (`rediss://localhost` with TLS, so the certificate's name matches).
    public func url(user: String? = nil, password: String? = nil, database: Int = 0) -> String {
        let credentials =
            switch (user, password) {
            case (let user?, let password?): "\(user):\(password)@"
            case (nil, let password?): "\(password)@"
            default: ""
            }
        let host = options.tls == nil ? "127.0.0.1" : "localhost"
        return "\(options.tls == nil ? "redis" : "rediss")://\(credentials)\(host):\(port)/\(database)"
    }

    /// A client configuration for this server, trusting the test CA when TLS is on.
    public func configuration(user: String? = nil, password: String? = nil, clientCertificate: Bool = false) throws
        -> RedisConfiguration
    {
        var tls = RedisConfiguration.TLS()
        if let certificates = options.tls {
            tls.caFile = certificates.caCertificate
            if clientCertificate {
                tls.certificateFile = certificates.clientCertificate
                tls.keyFile = certificates.clientKey
            }
        }
        var configuration = try RedisConfiguration(url: url(user: user, password: password), tls: tls)
        configuration.connectTimeout = .seconds(2)
        configuration.commandTimeout = .seconds(2)
        configuration.reconnectInitialDelay = .milliseconds(10)
        configuration.reconnectMaximumDelay = .milliseconds(100)
        return configuration
    }

    /// Whether the server process is alive.
    public var isRunning: Bool { process?.isRunning ?? false }

    /// Kills the server (SIGKILL: no goodbye to clients).
    public func kill() {
        process?.kill()
        process = nil
    }

    /// Kills and starts the server again on the same port.
    public func restart() async throws {
        kill()
        try await start()
    }

    /// The server's log, for diagnosing a test.
    public var log: String { (try? String(contentsOfFile: directory.file("redis.log"), encoding: .utf8)) ?? "" }

    private func start() async throws {
        var lines = [
            "bind 127.0.0.1",
            "protected-mode no",
            "dir \(directory.path)",
            "logfile \(directory.file("redis.log"))"
        ]
        if !options.sentinel {
            lines += ["save \"\"", "appendonly \(options.appendOnly ? "yes" : "no")", "appendfsync always"]
        }
        if let tls = options.tls {
            lines += [
                "port 0", "tls-port \(port)", "tls-cert-file \(tls.serverCertificate)",
                "tls-key-file \(tls.serverKey)", "tls-ca-cert-file \(tls.caCertificate)",
                "tls-auth-clients \(options.requireClientCertificates ? "yes" : "no")"
            ]
        } else {
            lines.append("port \(port)")
        }
        if let password = options.defaultPassword { lines.append("requirepass \(password)") }
        lines += options.aclUsers
        lines += options.extraConfiguration
        if options.extraConfiguration.contains("cluster-enabled yes") {
            // The cluster bus would be port + 10,000 (above 65,535 for high ports, or taken): name a free one.
            lines.append("cluster-port \(try freeLoopbackPort())")
        }
        let config = try directory.write("redis.conf", lines.joined(separator: "\n") + "\n")
        try? FileManager.default.removeItem(atPath: directory.file("redis.log"))

        // Under `timeout`: if the test process dies without stopping it, the server still ends.
        let process = try ChildProcess(
            "/usr/bin/timeout", ["-s", "KILL", "900", Self.executable(), config] + (options.sentinel ? ["--sentinel"] : []))
        self.process = process

        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                let log = (try? String(contentsOfFile: directory.file("redis.log"), encoding: .utf8)) ?? ""
                throw TestSupportError("redis-server exited at start: \(log.suffix(800))")
            }
            // The port accepting is not enough: another test's server may have won the race for it
            // while this one failed to bind. Ours says it is ready in its own log.
            if loopbackPortAccepts(port), log.contains(options.sentinel ? "Sentinel ID is" : "Ready to accept connections") { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TestSupportError("redis-server did not accept connections on port \(port) within 10 s")
    }

    private static func executable() -> String {
        for candidate in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "/usr/bin/redis-server"
    }
}
