import Shared

/// What the Redis store needs of a client, whatever the topology: commands by the key they touch (so
/// that Redis Cluster can route them), pipelines, scripts, and how many connections it has made.
public protocol RedisCommandRunner: Sendable {
    /// Sends one command about `key` (nil: a command without a key); `.error` replies are returned,
    /// not thrown.
    /// - Throws: `StoreError.unavailable` / `.timeout` / `.authentication`.
    func send(_ arguments: [RedisArgument], key: String?, timeout: Duration?) async throws -> RESPValue

    /// Sends commands, each about its key; replies in the commands' order.
    func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue]

    /// Runs a script by SHA on the server that owns `keys` (all in one slot), loading it on NOSCRIPT.
    func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RESPValue

    /// Grows whenever a connection was (re)established: a server restarted, failed over, or a cluster
    /// node was reached for the first time. What was acknowledged before may be missing now.
    var session: UInt64 { get }

    /// Closes every connection; the next command reconnects.
    func close() async
}

extension RedisCommandRunner {
    /// A command whose key, if it has one, is its second argument (`HGET key field`, `XADD key …`).
    public func send(_ arguments: [RedisArgument], timeout: Duration? = nil) async throws -> RESPValue {
        try await send(arguments, key: arguments.count > 1 ? String(decoding: arguments[1].bytes, as: UTF8.self) : nil, timeout: timeout)
    }
}

extension RedisClient: RedisCommandRunner {
    /// One server holds every key: `key` is not needed.
    public func send(_ arguments: [RedisArgument], key: String?, timeout: Duration?) async throws -> RESPValue {
        try await pipeline([arguments], timeout: timeout)[0]
    }

    public func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue] {
        try await pipeline(commands.map(\.arguments), timeout: timeout)
    }

    public func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RESPValue {
        let tail = [RedisArgument(keys.count)] + keys.map { RedisArgument($0) } + arguments
        let reply = try await send(["EVALSHA", RedisArgument(script.sha)] + tail, key: nil, timeout: nil)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            return try await send(["EVAL", RedisArgument(script.source)] + tail, key: nil, timeout: nil)
        }
        return reply
    }
}
