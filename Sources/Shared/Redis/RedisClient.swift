import Logging
import Metrics
import NIOCore
import NIOPosix

/// A Redis connection that comes back: connects on first use, and after the connection is lost
/// reconnects on the next command. Failed connects back off exponentially (with ±50% jitter) up to the
/// configured maximum; commands sent while backing off fail at once with `StoreError.unavailable`, so
/// callers keep serving what they have instead of queueing behind a dead server.
public actor RedisClient {
    public let configuration: RedisConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let reconnects: Counter
    private let connectFailures: Counter
    private var connection: RedisConnection?
    private var connecting: Task<RedisConnection, any Error>?
    private var consecutiveFailures = 0
    private var retryAt: ContinuousClock.Instant?
    private var everConnected = false

    public init(
        _ configuration: RedisConfiguration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "legation.redis"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.reconnects = Counter(label: "legation_redis_reconnects_total", factory: metricsFactory)
        self.connectFailures = Counter(label: "legation_redis_connect_failures_total", factory: metricsFactory)
    }

    /// Sends one command; `.error` replies are returned, not thrown.
    /// - Throws: `StoreError.unavailable` / `.timeout` / `.authentication`.
    public func send(_ arguments: [RedisArgument], timeout: Duration? = nil) async throws -> RESPValue {
        try await pipeline([arguments], timeout: timeout)[0]
    }

    /// Sends commands in one write; replies in order.
    public func pipeline(_ commands: [[RedisArgument]], timeout: Duration? = nil) async throws -> [RESPValue] {
        let connection = try await currentConnection()
        do {
            return try await connection.pipeline(commands, timeout: timeout)
        } catch {
            drop(connection)
            throw error
        }
    }

    /// Runs a script by SHA, loading it on the first NOSCRIPT answer (after a restart or a flush).
    func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RESPValue {
        let tail = [RedisArgument(keys.count)] + keys.map { RedisArgument($0) } + arguments
        let reply = try await send(["EVALSHA", RedisArgument(script.sha)] + tail)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            return try await send(["EVAL", RedisArgument(script.source)] + tail)
        }
        return reply
    }

    /// Closes the connection; the next command reconnects.
    public func close() {
        connection?.close()
        connection = nil
    }

    private func currentConnection() async throws -> RedisConnection {
        if let connection, connection.isActive { return connection }
        connection = nil
        if let connecting { return try await connecting.value }
        if let retryAt, ContinuousClock.now < retryAt {
            throw StoreError(.unavailable, "Redis \(configuration.redactedURL) is unreachable; next attempt in \(retryAt - .now)")
        }
        let configuration = self.configuration
        let group = self.group
        let task = Task { try await RedisConnection.connect(configuration, group: group) }
        connecting = task
        defer { connecting = nil }
        do {
            let connection = try await task.value
            if everConnected {
                reconnects.increment()
                logger.info("reconnected to Redis", metadata: ["redis": "\(configuration.redactedURL)"])
            }
            everConnected = true
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

    private func drop(_ failed: RedisConnection) {
        if !failed.isActive, connection === failed { connection = nil }
    }
}
