import Logging
import Metrics
import NIOCore
import NIOPosix
import Shared

/// A Redis connection that comes back: connects on first use, and after the connection is lost
/// reconnects on the next command. Failed connects back off exponentially (with ±50% jitter) up to the
/// configured maximum; commands sent while backing off fail at once with `StoreError.unavailable`, so
/// callers keep serving what they have instead of queueing behind a dead server.
///
/// Under Redis Sentinel every (re)connect asks the sentinels for the primary, and the server it names
/// must say `ROLE` master. While connected, a sentinel is asked again every `primaryCheckInterval` (in
/// the background, at the next command due), and a reply that shows the server is no longer the primary
/// (`READONLY` to a write, `UNBLOCKED` when it was demoted under a blocked read): either drops the
/// connection, and the next command finds the primary again. `session` counts connections made, so a
/// writer knows to check what a server it had not written through before holds.
public actor RedisClient {
    public let configuration: RedisConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let reconnects: Counter
    private let connectFailures: Counter
    private var connection: RedisConnection?
    private var connecting: Task<(RedisConnection, Int), any Error>?
    private var consecutiveFailures = 0
    private var retryAt: ContinuousClock.Instant?
    /// Connections made so far; see `session`.
    private let connections: ConnectionCount
    /// Connections this client made (`connections` may be shared).
    private var made = 0
    /// The sentinel that answered last: asked first next time.
    private var preferredSentinel = 0
    private var lastPrimaryCheck = ContinuousClock.now
    private var checkingPrimary = false
    /// Kept open for the periodic primary checks.
    private var sentinelConnection: RedisConnection?

    public init(
        _ configuration: RedisConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "legation.redis"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.init(configuration, group: group, logger: logger, metricsFactory: metricsFactory, counting: ConnectionCount())
    }

    /// A client whose connections count towards `connections` (the nodes of one Redis Cluster share one).
    init(
        _ configuration: RedisConfiguration, group: any EventLoopGroup, logger: Logger, metricsFactory: any MetricsFactory,
        counting connections: ConnectionCount
    ) {
        self.connections = connections
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.reconnects = Counter(label: "legation_redis_reconnects_total", factory: metricsFactory)
        self.connectFailures = Counter(label: "legation_redis_connect_failures_total", factory: metricsFactory)
    }

    /// Sends commands in one write; replies in order.
    public func pipeline(_ commands: [[RedisArgument]], timeout: Duration? = nil) async throws -> [RESPValue] {
        let connection = try await currentConnection()
        let replies: [RESPValue]
        do {
            replies = try await connection.pipeline(commands, timeout: timeout)
        } catch {
            drop(connection)
            throw error
        }
        if let demoted = replies.lazy.compactMap(\.errorMessage).first(where: Self.showsDemotion) {
            logger.warning(
                "Redis is no longer the primary; finding it again",
                metadata: ["redis": "\(configuration.redactedURL)", "reply": "\(demoted.prefix(120))"])
            connection.close()
            if self.connection === connection { self.connection = nil }
        }
        return replies
    }

    /// Connections made so far (1 after the first): it changes whenever the client reconnected, to the
    /// same server after a restart or to another after a failover. What was acknowledged before may be
    /// missing from the server now.
    public nonisolated var session: UInt64 { connections.value }

    /// An error reply that means the server was demoted to a replica under us.
    static func showsDemotion(_ message: String) -> Bool {
        message.hasPrefix("READONLY") || message.hasPrefix("UNBLOCKED") || message.hasPrefix("MASTERDOWN")
    }

    /// Closes the connection; the next command reconnects.
    public func close() {
        connection?.close()
        connection = nil
        sentinelConnection?.close()
        sentinelConnection = nil
    }

    private func currentConnection() async throws -> RedisConnection {
        if let connection, connection.isActive {
            if case .sentinel = configuration.topology, !checkingPrimary,
                ContinuousClock.now - lastPrimaryCheck >= configuration.primaryCheckInterval
            {
                checkingPrimary = true
                lastPrimaryCheck = .now
                Task { await self.checkPrimary(of: connection) }
            }
            return connection
        }
        connection = nil
        if let connecting { return try await connecting.value.0 }
        if let retryAt, ContinuousClock.now < retryAt {
            throw StoreError(.unavailable, "Redis \(configuration.redactedURL) is unreachable; next attempt in \(retryAt - .now)")
        }
        let configuration = self.configuration
        let group = self.group
        let first = preferredSentinel
        let task = Task { try await Self.open(configuration, group: group, firstSentinel: first) }
        connecting = task
        defer { connecting = nil }
        do {
            let (connection, sentinel) = try await task.value
            preferredSentinel = sentinel
            lastPrimaryCheck = .now
            if made > 0 {
                reconnects.increment()
                logger.info("reconnected to Redis", metadata: ["redis": "\(configuration.redactedURL)", "server": "\(connection.address)"])
            }
            made += 1
            connections.increment()
            consecutiveFailures = 0
            retryAt = nil
            self.connection = connection
            return connection
        } catch {
            consecutiveFailures += 1
            connectFailures.increment()
            let delay = Backoff.delay(
                attempt: consecutiveFailures, initial: configuration.reconnectInitialDelay,
                maximum: configuration.reconnectMaximumDelay)
            retryAt = .now + delay
            logger.warning(
                "cannot connect to Redis",
                metadata: ["redis": "\(configuration.redactedURL)", "error": "\(error)", "retry_in": "\(delay)"])
            throw error
        }
    }

    /// Connects to the server the configuration names, or under Sentinel to the primary the sentinels
    /// name (asking them in turn from `firstSentinel`). - Returns: the connection and the sentinel that
    /// answered.
    private static func open(_ configuration: RedisConfiguration, group: any EventLoopGroup, firstSentinel: Int) async throws
        -> (RedisConnection, Int)
    {
        switch configuration.topology {
        case .standalone:
            return (try await RedisConnection.connect(configuration, group: group), firstSentinel)
        case .cluster:
            throw StoreError(.configuration, "a Redis Cluster is reached through RedisClusterClient, not RedisClient")
        case .sentinel(let name, let sentinels):
            var failures: [String] = []
            for step in 0..<sentinels.count {
                let index = (firstSentinel + step) % sentinels.count
                let address: RedisConfiguration.Address
                do {
                    guard let named = try await primary(of: name, asking: configuration.sentinel(sentinels[index]), group: group) else {
                        failures.append("\(sentinels[index]) knows no master \(name)")
                        continue
                    }
                    address = named
                } catch {
                    failures.append("\(sentinels[index]): \(error)")
                    continue
                }
                let connection = try await RedisConnection.connect(configuration.node(address), group: group)
                let role = try await connection.send(["ROLE"])
                if let refused = role.errorMessage {
                    connection.close()
                    throw StoreError(
                        refused.hasPrefix("NOPERM") ? .authentication : .protocolError,
                        "ROLE refused by \(address) (the primary of \(name)): \(refused.prefix(200))")
                }
                guard role.array?.first?.string == "master" else {
                    connection.close()
                    throw StoreError(
                        .unavailable,
                        "sentinel \(sentinels[index]) names \(address) the primary of \(name), but it says it is not (a failover in progress?)"
                    )
                }
                return (connection, index)
            }
            throw StoreError(.unavailable, "no sentinel named the primary of \(name): \(failures.joined(separator: "; "))")
        }
    }

    /// Asks the preferred sentinel which server is the primary; drops `connection` when it names another.
    private func checkPrimary(of connection: RedisConnection) async {
        defer { checkingPrimary = false }
        guard case .sentinel(let name, let sentinels) = configuration.topology, !sentinels.isEmpty else { return }
        let sentinel = sentinels[preferredSentinel % sentinels.count]
        do {
            if sentinelConnection?.isActive != true {
                sentinelConnection = try await RedisConnection.connect(configuration.sentinel(sentinel), group: group)
            }
            guard let asked = sentinelConnection, let primary = try await Self.primary(of: name, asking: asked),
                primary != connection.address
            else {
                if self.connection == nil { sentinelConnection?.close() }  // closed meanwhile
                return
            }
            logger.warning(
                "the sentinels name another primary; reconnecting",
                metadata: ["redis": "\(configuration.redactedURL)", "was": "\(connection.address)", "now": "\(primary)"])
        } catch {
            sentinelConnection?.close()
            sentinelConnection = nil
            return  // the next check (or a reconnect) asks again
        }
        connection.close()
        if self.connection === connection { self.connection = nil }
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`: the primary's address, or nil when this sentinel does not
    /// know the name.
    private static func primary(of name: String, asking sentinel: RedisConfiguration, group: any EventLoopGroup) async throws
        -> RedisConfiguration.Address?
    {
        let connection = try await RedisConnection.connect(sentinel, group: group)
        defer { connection.close() }
        return try await primary(of: name, asking: connection)
    }

    private static func primary(of name: String, asking connection: RedisConnection) async throws -> RedisConfiguration.Address? {
        let reply = try await connection.send(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", RedisArgument(name)])
        if reply.isNull { return nil }
        if let message = reply.errorMessage { throw StoreError(.protocolError, "sentinel answered: \(message.prefix(200))") }
        guard let parts = reply.array, parts.count == 2, let host = parts[0].string, !host.isEmpty,
            let port = parts[1].string.flatMap({ Int($0) }), (1...65_535).contains(port)
        else { throw StoreError(.protocolError, "sentinel answered \(String(describing: reply).prefix(200)) for the primary of \(name)") }
        return RedisConfiguration.Address(host: host, port: port)
    }

    private func drop(_ failed: RedisConnection) {
        if !failed.isActive, connection === failed { connection = nil }
    }
}
