import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Metrics
import NIOCertificateReloading
import NIOCore
import NIOSSL
import ServiceLifecycle
import Shared

/// The xds-server process body: follows the store, builds and publishes snapshots, serves xDS over
/// gRPC. One `Service`: `run()` returns after graceful shutdown (stop accepting, end every stream with
/// UNAVAILABLE so clients reconnect elsewhere, give connections `closeGracePeriod` to close).
public final class XDSServerRuntime: Service, Sendable {
    public struct Options: Sendable {
        public var pipeline = ResourcePipeline.Options()
        public var follower = StoreFollower.Options()
        public var serving = ServingOptions()
        public var service = XDSService.Options()
        /// How often source heartbeats are read (staleness).
        public var heartbeatCheckInterval: Duration = .seconds(2)
        public init() {}
    }

    public let hub = XDSHub()
    public let pipeline: ResourcePipeline
    private let reader: any EndpointStoreReader
    private let options: Options
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private let boundPort = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))

    public init(
        reader: any EndpointStoreReader, options: Options, logger: Logger, metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.reader = reader
        self.options = options
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.pipeline = ResourcePipeline(hub: hub, options: options.pipeline, logger: logger, metricsFactory: metricsFactory)
    }

    /// The port the gRPC listener is bound to, once it is.
    public func port() async -> Int? {
        for await port in boundPort.stream { return port }
        return nil
    }

    public func run() async throws {
        let pipeline = self.pipeline
        var follow = options.follower
        follow.sources.formUnion(options.pipeline.requiredSources)
        let follower = StoreFollower(
            reader: reader, options: follow, logger: logger, metricsFactory: metricsFactory,
            caughtUp: { await pipeline.markCaughtUp() },
            deliver: { await pipeline.deliver($0) })

        let server = try makeServer()
        let hub = self.hub
        let reader = self.reader
        let interval = options.heartbeatCheckInterval
        let grace = options.serving.closeGracePeriod
        let logger = self.logger
        let boundPort = self.boundPort.continuation
        let transportName = options.serving.transport.rawValue

        do {
            try await withGracefulShutdownHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        try await server.serve { port in
                            logger.info("serving xDS", metadata: ["port": "\(port)", "transport": "\(transportName)"])
                            boundPort.yield(port)
                        }
                    }
                    group.addTask { await pipeline.run() }
                    group.addTask { await follower.run() }
                    if let reloader = server.reloader {
                        group.addTask { try? await reloader.run() }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            let known = await pipeline.knownSources
                            if let heartbeats = try? await reader.heartbeats(of: known) {
                                await pipeline.updateHeartbeats(heartbeats)
                            }
                            await pipeline.evaluateReadiness()
                            try? await Task.sleep(for: interval)
                        }
                    }
                    group.addTask {
                        // Ends with the process: wait for shutdown, then close in order.
                        try? await gracefulShutdown()
                        logger.info("shutting down: refusing new streams, ending open ones")
                        server.beginGracefulShutdown()
                        hub.shutdown()
                        try? await Task.sleep(for: grace)
                        throw ShutdownComplete()  // ends the group, cancelling the loops
                    }
                }
            } onGracefulShutdown: {
                server.beginGracefulShutdown()
                hub.shutdown()
            }
        } catch is ShutdownComplete {
            return
        }
    }

    private struct ShutdownComplete: Error {}

    /// The certificate and key of the xDS listener come through a reloader that re-reads the files every
    /// `reloadInterval` (new connections get the new certificate); loading them now makes a bad file an
    /// error at start, not at the first handshake.
    static func certificateReloader(_ tls: ServingOptions.TLS, logger: Logger) throws -> TimedCertificateReloader {
        do {
            let configuration = TimedCertificateReloader.Configuration(
                refreshInterval: tls.reloadInterval,
                certificateSource: .init(location: .file(path: tls.certificateChainFile), format: .pem),
                privateKeySource: .init(location: .file(path: tls.privateKeyFile), format: .pem)
            ) { configuration in
                // Every attempt reports a load; only a new certificate is worth a line. A failed reload
                // keeps serving the last good pair, and says so at each attempt until fixed.
                configuration.onCertificateLoaded = { diff in
                    guard let previous = diff.previousX509CertificateChain, previous != diff.currentX509CertificateChain else { return }
                    logger.info("loaded a new xDS TLS certificate", metadata: ["file": "\(tls.certificateChainFile)"])
                }
                configuration.onCertificateLoadFailed = { failure in
                    logger.warning(
                        "cannot reload the xDS TLS certificate; still serving the previous one",
                        metadata: ["file": "\(tls.certificateChainFile)", "error": "\(failure.error)"])
                }
            }
            return try TimedCertificateReloader.makeReloaderValidatingSources(configuration: configuration)
        } catch {
            throw XDSServerStartError(
                "cannot load the xDS TLS certificate \(tls.certificateChainFile) and key \(tls.privateKeyFile): \(error)")
        }
    }

    /// grpc-swift-2's transport security: plaintext, TLS, or mutual TLS.
    static func transportSecurity(_ tls: ServingOptions.TLS?, logger: Logger) throws
        -> (HTTP2ServerTransport.Posix.TransportSecurity, TimedCertificateReloader?)
    {
        guard let tls else { return (.plaintext, nil) }
        let reloader = try certificateReloader(tls, logger: logger)
        guard let clientCA = tls.clientCAFile else { return (try .tls(certificateReloader: reloader), reloader) }
        let security = try HTTP2ServerTransport.Posix.TransportSecurity.mTLS(certificateReloader: reloader) { config in
            config.trustRoots = .certificates([.file(path: clientCA, format: .pem)])
            config.clientCertificateVerification = .noHostnameVerification
        }
        return (security, reloader)
    }

    /// NIOSSL's context for the NIO listener: TLS (ALPN h2), or mutual TLS against the client CAs.
    static func sslContext(_ tls: ServingOptions.TLS?, logger: Logger) throws -> (NIOSSLContext?, TimedCertificateReloader?) {
        guard let tls else { return (nil, nil) }
        let reloader = try certificateReloader(tls, logger: logger)
        do {
            var configuration: TLSConfiguration
            if let clientCA = tls.clientCAFile {
                configuration = try .makeServerConfigurationWithMTLS(certificateReloader: reloader, trustRoots: .file(clientCA))
                configuration.certificateVerification = .noHostnameVerification
            } else {
                configuration = try .makeServerConfiguration(certificateReloader: reloader)
            }
            configuration.applicationProtocols = ["h2"]
            return (try NIOSSLContext(configuration: configuration), reloader)
        } catch {
            throw XDSServerStartError(
                "cannot set up TLS for the xDS listener (\(tls.certificateChainFile), \(tls.privateKeyFile), client CA \(tls.clientCAFile ?? "none")): \(error)"
            )
        }
    }

    /// The gRPC server the options name, not started.
    private func makeServer() throws -> XDSGRPCServer {
        let serving = options.serving
        switch serving.transport {
        case .nio:
            let (context, reloader) = try Self.sslContext(serving.tls, logger: logger)
            let shared = XDSStream.Shared(
                hub: hub, options: options.service, maximumRequestBytes: serving.maximumRequestBytes,
                metrics: XDSMetrics(factory: metricsFactory),
                logger: logger)
            return .nio(XDSListener(serving: serving, shared: shared, tls: context), reloader)
        case .grpcSwift:
            var config = HTTP2ServerTransport.Posix.Config.defaults
            config.rpc.maxRequestPayloadSize = serving.maximumRequestBytes
            config.http2.maxConcurrentStreams = serving.maximumStreamsPerConnection
            config.connection.keepalive.time = serving.keepaliveTime
            config.connection.keepalive.timeout = serving.keepaliveTimeout
            config.connection.keepalive.clientBehavior.allowWithoutCalls = true
            config.connection.keepalive.clientBehavior.minPingIntervalWithoutCalls = .seconds(5)
            // Max connection age, jittered per connection (gRPC's MAX_CONNECTION_AGE): at its age the
            // connection gets the same graceful GOAWAY as at shutdown.
            config.connection.maxAge = nil
            config.connection.maxGraceTime = serving.closeGracePeriod
            config.channelDebuggingCallbacks.onBindTCPListener = { channel in
                channel.setOption(ChannelOptions.backlog, value: 4096)
            }
            config.channelDebuggingCallbacks.onAcceptTCPConnection = { channel in
                var random = SystemRandomNumberGenerator()
                if let age = serving.connectionAge(using: &random) {
                    channel.eventLoop.scheduleTask(in: .nanoseconds(age.nanoseconds)) {
                        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                    }
                }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            let (security, reloader) = try Self.transportSecurity(serving.tls, logger: logger)
            let transport = HTTP2ServerTransport.Posix(
                address: .ipv4(host: serving.host, port: serving.port), transportSecurity: security, config: config)
            let server = GRPCServer(
                transport: transport,
                services: [XDSService(hub: hub, options: options.service, logger: logger, metricsFactory: metricsFactory)])
            return .grpcSwift(server, transport, reloader)
        }
    }
}
