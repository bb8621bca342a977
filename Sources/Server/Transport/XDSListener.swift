import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The xDS listener: gRPC over HTTP/2 straight on SwiftNIO, for the six xDS methods. Each connection
/// is one handler (`XDSConnection`) on one event loop, with its streams (`XDSStream`); TLS and mutual
/// TLS come from NIOSSL with the certificate reloader.
///
/// Why not grpc-swift-2's server here: it runs each RPC as a task fed through async sequences and
/// copies every message into a frame buffer of its own, which measured 120–275 µs of server CPU per
/// stream-update at 1,000 sidecars (benchmarks/README.md, P1). xDS fan-out is one snapshot to
/// thousands of streams; here it costs one closure per stream on its loop and shares resource bytes.
final class XDSListener: Sendable {
    private struct State {
        var channel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var closing = false
    }

    private let group: MultiThreadedEventLoopGroup
    private let serving: ServingOptions
    private let shared: XDSStream.Shared
    private let tls: NIOSSLContext?
    private let state = Mutex(State())

    init(serving: ServingOptions, shared: XDSStream.Shared, tls: NIOSSLContext?, threads: Int = System.coreCount) {
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        self.serving = serving
        self.shared = shared
        self.tls = tls
    }

    /// The connections open now (for tests).
    var connectionChannels: [any Channel] { state.withLock { Array($0.connections.values) } }

    /// Binds the listener. - Returns: the port.
    func bind() async throws -> Int {
        let serving = self.serving
        let shared = self.shared
        let tls = self.tls
        let connectionOptions = XDSConnection.Options(
            keepaliveTime: serving.keepaliveTime, keepaliveTimeout: serving.keepaliveTimeout, gracePeriod: serving.closeGracePeriod,
            maximumStreams: serving.maximumStreamsPerConnection)
        let channel = try await ServerBootstrap(group: group)
            // When a replica dies or at a rollout, thousands of sidecars reconnect at once; beyond the
            // accept queue the kernel drops their SYNs (each retries after 1 s, then 3 s). Linux caps
            // this at net.core.somaxconn.
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // Reads start at 512 bytes, not NIO's 2 KB: after the first request a sidecar sends ACKs of a
            // few hundred bytes, and every connection holds up to three receive buffers (the one being
            // read into, the pool's spare, the frame decoder's last). The allocator still grows to 64 KB
            // for a connection that sends more.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 64 * 1024))
            .childChannelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.addHandler(XDSConnection(options: connectionOptions, shared: shared, allocator: channel.allocator))
                    self?.track(channel, serving: serving)
                }
            }
            .bind(host: serving.host, port: serving.port)
            .get()
        let open = state.withLock { state -> Bool in
            guard !state.closing else { return false }
            state.channel = channel
            return true
        }
        if !open { try? await channel.close() }
        return channel.localAddress?.port ?? 0
    }

    /// Remembers a connection (to close it at shutdown) and gives it its maximum age.
    private func track(_ channel: any Channel, serving: ServingOptions) {
        let id = ObjectIdentifier(channel)
        let closing = state.withLock { state -> Bool in
            if !state.closing { state.connections[id] = channel }
            return state.closing
        }
        if closing {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.connections.removeValue(forKey: id) }
        }
        var random = SystemRandomNumberGenerator()
        if let age = serving.connectionAge(using: &random) {
            // gRPC's MAX_CONNECTION_AGE, jittered per connection: the same graceful GOAWAY as at
            // shutdown, so clients reconnect through the Service and spread over replicas added since.
            channel.eventLoop.scheduleTask(in: .nanoseconds(age.nanoseconds)) {
                channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
            }
        }
    }

    /// Stops accepting and sends every connection a GOAWAY; connections close as their streams end,
    /// or after the grace period.
    func beginGracefulShutdown() {
        let (listener, connections) = state.withLock { state -> ((any Channel)?, [any Channel]) in
            state.closing = true
            defer { state.channel = nil }
            return (state.channel, Array(state.connections.values))
        }
        listener?.close(promise: nil)
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
    }

    /// Closes everything now and stops the event loops.
    func close() async {
        beginGracefulShutdown()
        let connections = state.withLock { Array($0.connections.values) }
        for connection in connections { try? await connection.close() }
        try? await group.shutdownGracefully()
    }
}
