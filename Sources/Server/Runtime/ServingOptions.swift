/// The gRPC listener's limits and connection management.
public struct ServingOptions: Sendable, Hashable {
    /// Which gRPC server carries the xDS streams.
    public enum Transport: String, Sendable, Hashable, CaseIterable {
        /// gRPC over HTTP/2 on SwiftNIO directly, streams on their connection's event loop
        /// (`XDSListener`). The default.
        case nio
        /// grpc-swift-2's server: each stream a task. Kept as a fallback for one release.
        case grpcSwift = "grpc-swift"
    }

    public var transport = Transport.nio
    public var host = "0.0.0.0"
    /// 0 picks a free port (tests).
    public var port = 18000
    /// Largest request message accepted.
    public var maximumRequestBytes = 4 * 1024 * 1024
    /// Most concurrent HTTP/2 streams per connection.
    public var maximumStreamsPerConnection = 100
    /// Ping an idle connection after this long; close it if the ping is not answered in `keepaliveTimeout`.
    public var keepaliveTime: Duration = .seconds(30)
    public var keepaliveTimeout: Duration = .seconds(10)
    /// Close connections (GOAWAY) after this age, each at a random point within ± `connectionAgeJitter`
    /// of it, so clients spread over replicas that were added later. nil: never.
    public var maximumConnectionAge: Duration? = .seconds(30 * 60)
    /// Fraction of `maximumConnectionAge`, 0 to 0.5.
    public var connectionAgeJitter = 0.1
    /// How long a closing connection (age or shutdown) may take to finish.
    public var closeGracePeriod: Duration = .seconds(10)

    /// TLS for the xDS listener; nil serves plaintext (inside a mesh of its own, or behind a proxy).
    public var tls: TLS?

    public struct TLS: Sendable, Hashable {
        /// PEM files: the server's certificate chain and its private key, re-read every `reloadInterval`
        /// (a renewed certificate is served to new connections without a restart).
        public var certificateChainFile: String
        public var privateKeyFile: String
        /// PEM file of the CAs a client certificate must chain to. Set: mutual TLS, and a client without
        /// a certificate from one of them is refused during the handshake. Read at start.
        public var clientCAFile: String?
        public var reloadInterval: Duration = .seconds(60)

        public init(certificateChainFile: String, privateKeyFile: String, clientCAFile: String? = nil) {
            self.certificateChainFile = certificateChainFile
            self.privateKeyFile = privateKeyFile
            self.clientCAFile = clientCAFile
        }
    }

    public init() {}

    /// The age of one connection: `maximumConnectionAge` moved by a random fraction of the jitter.
    public func connectionAge<G: RandomNumberGenerator>(using generator: inout G) -> Duration? {
        guard let age = maximumConnectionAge else { return nil }
        let jitter = min(max(connectionAgeJitter, 0), 0.5)
        guard jitter > 0 else { return age }
        return age * Double.random(in: (1 - jitter)...(1 + jitter), using: &generator)
    }
}
