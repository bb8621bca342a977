import NIOCore
import NIOPosix
import NIOSSL
import Shared

/// One connection to Redis over a SwiftNIO channel (TLS with swift-nio-ssl for `rediss://`), speaking
/// RESP through hiredis's formatter and reader. Nothing here blocks a thread: hiredis does no I/O.
///
/// Commands may be sent from any task and are pipelined. A command that gets no reply within its timeout
/// closes the connection (its replies can no longer be matched) and fails every outstanding command with
/// `StoreError.timeout`. Cancelling a waiting task does not cancel its command.
public final class RedisConnection: Sendable {
    private let channel: any Channel
    private let commandTimeout: Duration
    /// The server this connection reached.
    public let address: RedisConfiguration.Address

    private init(channel: any Channel, commandTimeout: Duration, address: RedisConfiguration.Address) {
        self.channel = channel
        self.commandTimeout = commandTimeout
        self.address = address
    }

    /// Connects, then authenticates, selects the database and names the connection.
    ///
    /// - Throws: `StoreError.unavailable` (refused, unreachable, TLS failure), `.timeout`,
    ///   `.authentication` (bad credentials), `.configuration` (unreadable certificate files).
    public static func connect(
        _ configuration: RedisConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RedisConnection {
        let sslContext = try configuration.tls.map { tls throws(StoreError) in try makeSSLContext(tls) }
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.milliseconds(configuration.connectTimeout.milliseconds))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let tlsHandler = try NIOSSLClientHandler(context: sslContext, serverHostname: configuration.host)
                        try channel.pipeline.syncOperations.addHandler(tlsHandler)
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        RedisChannelHandler(maximumReplyBytes: configuration.maximumReplyBytes))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw StoreError(.unavailable, "cannot connect to \(configuration.redactedURL)", cause: error)
        }
        let connection = RedisConnection(channel: channel, commandTimeout: configuration.commandTimeout, address: configuration.address)
        do {
            try await connection.handshake(configuration)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    private func handshake(_ configuration: RedisConfiguration) async throws {
        var commands: [[RedisArgument]] = []
        if let password = configuration.password {
            if let username = configuration.username {
                commands.append(["AUTH", RedisArgument(username), RedisArgument(password)])
            } else {
                commands.append(["AUTH", RedisArgument(password)])
            }
        }
        if configuration.database != 0 { commands.append(["SELECT", RedisArgument(configuration.database)]) }
        commands.append(["CLIENT", "SETNAME", RedisArgument(configuration.clientName)])
        for (command, reply) in zip(commands, try await pipeline(commands)) {
            if case .error(let message) = reply {
                let name = String(decoding: command[0].bytes, as: UTF8.self)
                let code: StoreError.Code =
                    message.hasPrefix("WRONGPASS") || message.hasPrefix("NOAUTH") || message.hasPrefix("NOPERM")
                        || message.contains("invalid password") ? .authentication : .protocolError
                throw StoreError(code, "\(name) refused by \(configuration.redactedURL): \(message)")
            }
        }
    }

    /// Sends one command. Redis error replies come back as `.error`, not thrown.
    public func send(_ arguments: [RedisArgument], timeout: Duration? = nil) async throws -> RESPValue {
        try await pipeline([arguments], timeout: timeout)[0]
    }

    /// Sends commands back to back in one write; the replies in the same order.
    public func pipeline(_ commands: [[RedisArgument]], timeout: Duration? = nil) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        var buffer = channel.allocator.buffer(capacity: 64 * commands.count)
        for command in commands { RESPEncoder.encode(command, into: &buffer) }
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let futures = promises.map(\.futureResult)
        let limit = timeout ?? commandTimeout
        let channel = self.channel
        // Completing a promise twice is a no-op in NIO, so every path below may simply fail them all.
        let timer = loop.scheduleTask(in: .milliseconds(limit.milliseconds)) {
            let error = StoreError(.timeout, "Redis did not answer within \(limit); connection closed")
            promises.forEach { $0.fail(error) }
            channel.pipeline.fireErrorCaught(error)
            channel.close(promise: nil)
        }
        // A write that never reaches the handler (the channel closed meanwhile) fails here.
        let written = loop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            let failure = StoreError(.unavailable, "Redis connection closed", cause: error)
            promises.forEach { $0.fail(failure) }
        }
        // Cancelled on the event loop the moment the last reply arrives (replies come in order): a
        // waiting task resumed late must not let the timer close a healthy connection.
        futures.last?.whenComplete { _ in timer.cancel() }
        channel.writeAndFlush(RedisRequest(bytes: buffer, promises: promises), promise: written)
        var replies: [RESPValue] = []
        replies.reserveCapacity(futures.count)
        for future in futures { replies.append(try await future.get()) }
        return replies
    }

    /// True until the connection closes (by either side or after an error).
    public var isActive: Bool { channel.isActive }

    /// Closes the connection; outstanding commands fail with `StoreError.unavailable`.
    public func close() {
        channel.close(promise: nil)
    }

    private static func makeSSLContext(_ tls: RedisConfiguration.TLS) throws(StoreError) -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        do {
            if let caFile = tls.caFile {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            }
            if let certificateFile = tls.certificateFile {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
                guard let keyFile = tls.keyFile else {
                    throw StoreError(.configuration, "a Redis client certificate needs its key file")
                }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            if tls.insecureSkipVerify { configuration.certificateVerification = .none }
            return try NIOSSLContext(configuration: configuration)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.configuration, "cannot load Redis TLS files", cause: error)
        }
    }
}
