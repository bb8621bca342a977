import Foundation
import RedisStore
import Shared

/// A Redis Sentinel deployment of real processes on loopback: a primary, its replicas, and sentinels
/// that watch it under `name` and fail it over when it stops answering for `downAfterMilliseconds`.
public final class RedisSentinelSet: @unchecked Sendable {
    public let name = "legation"
    /// The data servers; `servers[0]` started as the primary.
    public private(set) var servers: [RedisServer] = []
    public private(set) var sentinels: [RedisServer] = []
    private let sentinelPassword: String?

    /// - Parameter sentinelPassword: the sentinels require it (`requirepass`; one sentinel only: they
    ///   would need it of each other too).
    /// - Parameter aclUsers: `user …` lines for the data servers (the default user stays on, for the
    ///   sentinels and replication).
    public init(
        replicas: Int = 1, sentinels sentinelCount: Int = 3, downAfterMilliseconds: Int = 1000, sentinelPassword: String? = nil,
        aclUsers: [String] = []
    ) async throws {
        self.sentinelPassword = sentinelPassword
        var primaryOptions = RedisServer.Options()
        primaryOptions.aclUsers = aclUsers
        let primary = try await RedisServer(primaryOptions)
        servers.append(primary)
        for _ in 0..<replicas {
            var options = RedisServer.Options()
            options.aclUsers = aclUsers
            options.extraConfiguration = ["replicaof 127.0.0.1 \(primary.port)", "replica-serve-stale-data yes"]
            servers.append(try await RedisServer(options))
        }
        for _ in 0..<sentinelCount {
            var options = RedisServer.Options()
            options.sentinel = true
            options.extraConfiguration =
                [
                    "sentinel monitor \(name) 127.0.0.1 \(primary.port) \(sentinelCount / 2 + 1)",
                    "sentinel down-after-milliseconds \(name) \(downAfterMilliseconds)",
                    "sentinel failover-timeout \(name) 4000",
                    "sentinel parallel-syncs \(name) 1"
                ] + servers.dropFirst().map { "sentinel known-replica \(name) 127.0.0.1 \($0.port)" }
                + (sentinelPassword.map { ["requirepass \($0)"] } ?? [])
            sentinels.append(try await RedisServer(options))
        }
        // Ready when every replica is in sync and every sentinel has found the replicas.
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if try await replicasKnown() >= replicas, try await replicasInSync() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("the Sentinel set did not settle within 30 s; sentinel log: \(sentinels.first?.log.suffix(1500) ?? "")")
    }

    /// `redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,…/legation`.
    public var url: String {
        "redis+sentinel://" + sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/\(name)"
    }

    /// A client configuration with test-sized timeouts.
    public func configuration() throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        configuration.reconnectInitialDelay = .milliseconds(20)
        configuration.reconnectMaximumDelay = .milliseconds(200)
        return configuration
    }

    /// The primary's port as the first sentinel that answers names it.
    public func primaryPort() async -> Int? {
        for sentinel in sentinels {
            guard
                let reply = try? await Self.command(
                    sentinel.port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", RedisArgument(name)], password: sentinelPassword),
                let parts = reply.array, parts.count == 2, let port = parts[1].string.flatMap({ Int($0) })
            else { continue }
            return port
        }
        return nil
    }

    /// The data server listening on `port`.
    public func server(port: Int) -> RedisServer? { servers.first { $0.port == port } }

    /// Kills the current primary (SIGKILL). - Returns: its port.
    @discardableResult
    public func killPrimary() async throws -> Int {
        guard let port = await primaryPort(), let server = server(port: port) else { throw TestSupportError("no sentinel names a primary") }
        server.kill()
        return port
    }

    /// Waits until the sentinels name a primary other than `old` and it says it is one.
    public func waitForFailover(from old: Int, within limit: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if await isFailedOver(from: old) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Whether the sentinels name a primary other than `old` that says it is one.
    public func isFailedOver(from old: Int) async -> Bool {
        guard let port = await primaryPort(), port != old, let role = try? await Self.command(port, ["ROLE"]) else { return false }
        return role.array?.first?.string == "master"
    }

    private func replicasKnown() async throws -> Int {
        var least = Int.max
        for sentinel in sentinels {
            let reply = try await Self.command(sentinel.port, ["SENTINEL", "REPLICAS", RedisArgument(name)], password: sentinelPassword)
            least = min(least, reply.array?.count ?? 0)
        }
        return least
    }

    private func replicasInSync() async throws -> Bool {
        for server in servers.dropFirst() {
            let info = try await Self.command(server.port, ["INFO", "replication"]).string ?? ""
            guard info.contains("master_link_status:up") else { return false }
        }
        return true
    }

    /// One command to a loopback server (sentinel or data node).
    public static func command(_ port: Int, _ arguments: [RedisArgument], password: String? = nil) async throws -> RESPValue {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(port)")
        configuration.password = password
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        let connection = try await RedisConnection.connect(configuration)
        defer { connection.close() }
        return try await connection.send(arguments)
    }
}
