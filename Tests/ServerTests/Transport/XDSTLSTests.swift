import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import LegationTestSupport
import Server
import Shared
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// xDS over TLS and mutual TLS, with a throwaway PKI made by `openssl`: with a client CA configured,
/// only clients whose certificate chains to it are served.
@Suite struct XDSTLSTests {
    typealias F = XDSFixture

    /// Whether a stream with `security` gets the cluster list (false: refused, at any step).
    static func served(port: Int, security: HTTP2ClientTransport.Posix.TransportSecurity, node: String = "sidecar-1") async -> Bool {
        let result = try? await withADSStream(port: port, security: security) { stream -> Bool in
            stream.send(request(.cluster, node: node))
            return try await stream.next(timeout: .seconds(5))?.resources.count == 1
        }
        return result == true
    }

    /// Client TLS settings that trust the test CA (the server's certificate names localhost, not 127.0.0.1).
    static func trustingTheServer(_ pki: TestCertificates) -> @Sendable (inout HTTP2ClientTransport.Posix.TransportSecurity.TLS) -> Void {
        { config in
            config.trustRoots = .certificates([.file(path: pki.caCertificate, format: .pem)])
            config.serverCertificateVerification = .noHostnameVerification
        }
    }

    /// Server options for mutual TLS with the test PKI: its server certificate, clients from its CA.
    static func mutualTLSOptions(_ pki: TestCertificates) -> XDSServerRuntime.Options {
        var options = XDSServiceTests.options()
        options.serving.tls = ServingOptions.TLS(
            certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey, clientCAFile: pki.caCertificate)
        return options
    }

    /// A client presenting `certificate` (PEM) and `key`, trusting the test CA.
    static func mutualTLS(_ pki: TestCertificates, certificate: String, key: String) -> HTTP2ClientTransport.Posix.TransportSecurity {
        .mTLS(
            certificateChain: [.file(path: certificate, format: .pem)], privateKey: .file(path: key, format: .pem),
            configure: trustingTheServer(pki))
    }

    /// An in-memory store with `sets` published by a writer that holds the source's lease.
    static func store(publishing sets: [EndpointSet]) async throws -> InMemoryEndpointStore {
        let store = InMemoryEndpointStore()
        try await TestWriter.start(store, source: F.east).publish(sets)
        return store
    }

    @Test func mutualTLSServesOnlyClientsWithACertificateFromTheConfiguredCA() async throws {
        let directory = try TemporaryDirectory(prefix: "legation-xds-tls")
        defer { directory.remove() }
        let pki = try await TestCertificates(in: directory)
        let store = try await Self.store(publishing: [F.set("web", ["10.0.0.1"])])
        let options = Self.mutualTLSOptions(pki)
        try await XDSServiceTests.withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            let trustServer = Self.trustingTheServer(pki)
            let valid = Self.mutualTLS(pki, certificate: pki.clientCertificate, key: pki.clientKey)
            let foreign = Self.mutualTLS(pki, certificate: pki.otherCACertificate, key: directory.file("other.key"))
            #expect(await Self.served(port: port, security: valid), "a client certificate from the CA is served")
            #expect(await !Self.served(port: port, security: .tls(configure: trustServer)), "no client certificate: refused")
            #expect(await !Self.served(port: port, security: foreign), "a certificate from another CA: refused")
            #expect(await !Self.served(port: port, security: .plaintext), "plaintext to a TLS listener: refused")
            #expect(await Self.served(port: port, security: valid), "and the server still serves")
        }
    }

    /// With `nodeIdentity`, a client is served only under a node id its certificate names.
    @Test(arguments: ["spiffe://legation.test/ns/*/sa/{node}", "{node}.sidecars.legation.test"])
    func nodeIdsAreBoundToTheCertificatesIdentity(pattern: String) async throws {
        let directory = try TemporaryDirectory(prefix: "legation-xds-tls")
        defer { directory.remove() }
        let pki = try await TestCertificates(in: directory)
        let store = try await Self.store(publishing: [F.set("web", ["10.0.0.1"])])
        var options = Self.mutualTLSOptions(pki)
        options.service.nodeIdentity = try NodeIdentityRule(pattern)
        try await XDSServiceTests.withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            let workload = Self.mutualTLS(pki, certificate: pki.workloadCertificate, key: pki.workloadKey)
            let anonymous = Self.mutualTLS(pki, certificate: pki.clientCertificate, key: pki.clientKey)
            #expect(await Self.served(port: port, security: workload, node: "sidecar-1"), "the node its certificate names")
            #expect(await !Self.served(port: port, security: workload, node: "sidecar-2"), "another node id with the same certificate")
            #expect(
                await !Self.served(port: port, security: anonymous, node: "sidecar-1"), "a certificate from the CA that names no workload")

            // The refusal says why, as PERMISSION_DENIED.
            let refusal = await #expect(throws: RPCError.self) {
                try await withADSStream(port: port, security: workload) { stream in
                    stream.send(request(.cluster, node: "sidecar-2"))
                    _ = try await stream.next(timeout: .seconds(5))
                }
            }
            #expect(refusal?.code == .permissionDenied)
            #expect(refusal?.message.contains("sidecar-2") == true && refusal?.message.contains("sidecar-1") == true)
            #expect(await Self.served(port: port, security: workload, node: "sidecar-1"), "and the server still serves")
        }
    }

    @Test func plainTLSServesAnyClientThatTrustsTheServer() async throws {
        let directory = try TemporaryDirectory(prefix: "legation-xds-tls")
        defer { directory.remove() }
        let pki = try await TestCertificates(in: directory)
        let store = try await Self.store(publishing: [F.set("web", ["10.0.0.1"])])
        var options = XDSServiceTests.options()
        options.serving.tls = ServingOptions.TLS(certificateChainFile: pki.serverCertificate, privateKeyFile: pki.serverKey)
        try await XDSServiceTests.withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            #expect(
                await Self.served(
                    port: port,
                    security: .tls { config in
                        config.trustRoots = .certificates([.file(path: pki.caCertificate, format: .pem)])
                        config.serverCertificateVerification = .noHostnameVerification
                    }))
            #expect(
                await !Self.served(
                    port: port,
                    security: .tls { config in
                        config.trustRoots = .certificates([.file(path: pki.otherCACertificate, format: .pem)])
                        config.serverCertificateVerification = .noHostnameVerification
                    }), "a client that does not trust the server's CA does not connect")
        }
    }

    @Test func aRenewedCertificateIsServedWithoutARestart() async throws {
        let first = try TemporaryDirectory(prefix: "legation-xds-tls")
        let second = try TemporaryDirectory(prefix: "legation-xds-tls")
        defer {
            first.remove()
            second.remove()
        }
        let old = try await TestCertificates(in: first)
        let renewed = try await TestCertificates(in: second)
        let live = try TemporaryDirectory(prefix: "legation-xds-tls-live")
        defer { live.remove() }
        let (chain, key) = (live.file("tls.crt"), live.file("tls.key"))
        @Sendable func install(_ pki: TestCertificates) throws {
            // As Kubernetes updates a mounted Secret: new files moved into place.
            for (source, target) in [(pki.serverCertificate, chain), (pki.serverKey, key)] {
                let staged = target + ".new"
                try? FileManager.default.removeItem(atPath: staged)
                try FileManager.default.copyItem(atPath: source, toPath: staged)
                guard rename(staged, target) == 0 else { throw TestSupportError("cannot move \(staged) into place") }
            }
        }
        try install(old)
        let store = try await Self.store(publishing: [F.set("web", ["10.0.0.1"])])
        var options = XDSServiceTests.options()
        options.serving.tls = ServingOptions.TLS(certificateChainFile: chain, privateKeyFile: key)
        options.serving.tls?.reloadInterval = .milliseconds(200)
        @Sendable func trusting(_ pki: TestCertificates) -> HTTP2ClientTransport.Posix.TransportSecurity {
            .tls { config in
                config.trustRoots = .certificates([.file(path: pki.caCertificate, format: .pem)])
                config.serverCertificateVerification = .noHostnameVerification
            }
        }
        try await XDSServiceTests.withServer(store, options: options) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            #expect(await Self.served(port: port, security: trusting(old)))
            #expect(await !Self.served(port: port, security: trusting(renewed)))
            try install(renewed)
            #expect(await eventually { await Self.served(port: port, security: trusting(renewed)) }, "the renewed certificate is served")
            #expect(await !Self.served(port: port, security: trusting(old)))
        }
    }

    /// A real Envoy over mutual TLS: with its client certificate it gets its clusters; the same Envoy
    /// without one never does.
    @Test func aRealEnvoyWithAClientCertificateIsServedAndOneWithoutIsNot() async throws {
        guard let binary = EnvoyProcess.binary else {
            Issue.record("envoy is not installed: run scripts/install-deps.sh --e2e")
            return
        }
        let directory = try TemporaryDirectory(prefix: "legation-xds-tls-envoy")
        defer { directory.remove() }
        let pki = try await TestCertificates(in: directory)
        let store = try await Self.store(publishing: [F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        let options = Self.mutualTLSOptions(pki)
        let runtime = XDSServerRuntime(reader: store, options: options, logger: .quiet())
        let server = Task { try await runtime.run() }
        defer { server.cancel() }
        let port = try #require(await runtime.port())
        #expect(await eventually { runtime.hub.notReadyReason == nil })
        let (trustedDirectory, strangerDirectory) = (
            try TemporaryDirectory(prefix: "legation-envoy"), try TemporaryDirectory(prefix: "legation-envoy")
        )
        defer {
            trustedDirectory.remove()
            strangerDirectory.remove()
        }
        let trusted = try Self.startEnvoy(
            binary: binary, name: "sidecar-with-certificate", xdsPort: port, pki: pki, certificate: true, directory: trustedDirectory)
        let stranger = try Self.startEnvoy(
            binary: binary, name: "sidecar-without-certificate", xdsPort: port, pki: pki, certificate: false, directory: strangerDirectory)
        let served = await eventually(within: .seconds(20)) {
            await EnvoyEndToEndTests.envoyStat(trusted, "cluster_manager.cds.update_success")[
                "cluster_manager.cds.update_success", default: 0] >= 1
        }
        #expect(served, "Envoy with a client certificate got its clusters; its log ends with:\n\(trusted.log.suffix(2000))")
        // Its two EDS clusters leave warming once their endpoints arrive (plus the static xDS cluster).
        #expect(
            await eventually(within: .seconds(20)) {
                await EnvoyEndToEndTests.envoyStat(trusted, "cluster_manager.active_clusters")[
                    "cluster_manager.active_clusters", default: 0] >= 3
            })
        // The other has had as long, and its TLS handshakes fail.
        let refused = await EnvoyEndToEndTests.envoyStat(stranger, "cluster_manager.cds.update_success")[
            "cluster_manager.cds.update_success", default: 0]
        #expect(refused == 0)
        #expect(runtime.hub.streams.count == 1, "only the trusted sidecar holds a stream")
        await trusted.stop()
        await stranger.stop()
    }

    static func startEnvoy(
        binary: String, name: String, xdsPort: Int, pki: TestCertificates, certificate: Bool, directory: TemporaryDirectory
    ) throws -> EnvoyProcess {
        let (adminPort, listenerPort) = (try freeLoopbackPort(), try freeLoopbackPort())
        var bootstrap = EnvoyBootstrap(nodeID: name, xdsServers: [("127.0.0.1", xdsPort)], adminPort: adminPort)
        bootstrap.tls = EnvoyBootstrap.TLS(
            caFile: pki.caCertificate, certificateFile: certificate ? pki.clientCertificate : nil,
            privateKeyFile: certificate ? pki.clientKey : nil, serverName: "localhost")
        return try EnvoyProcess(
            binary: binary, bootstrap: bootstrap.yaml, adminPort: adminPort, listenerPort: listenerPort, directory: directory)
    }

    @Test func aBadCertificateFileIsAnErrorAtStartAndInTheConfigCheck() async throws {
        let directory = try TemporaryDirectory(prefix: "legation-xds-tls")
        defer { directory.remove() }
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: directory.file("bad.pem")))
        var options = XDSServiceTests.options()
        options.serving.tls = ServingOptions.TLS(certificateChainFile: directory.file("bad.pem"), privateKeyFile: directory.file("bad.pem"))
        let runtime = XDSServerRuntime(reader: InMemoryEndpointStore(), options: options, logger: .quiet())
        await #expect(throws: XDSServerStartError.self) { try await runtime.run() }

        let config = try XDSServerConfiguration.parse(
            yaml: """
                grpc:
                  tls:
                    privateKeyFile: /nonexistent/key.pem
                    clientCAFile: /nonexistent/ca.pem
                    reloadSeconds: 0
                """)
        let problems = config.problems()
        #expect(problems.contains { $0.contains("grpc.tls.certificateChainFile is required") })
        #expect(problems.contains { $0.contains("grpc.tls.privateKeyFile /nonexistent/key.pem is not a readable file") })
        #expect(problems.contains { $0.contains("grpc.tls.clientCAFile") })
        #expect(problems.contains { $0.contains("grpc.tls.reloadSeconds") })
    }
}
