import Server
import Shared
import Testing

@Suite struct ServerConfigurationTests {
    @Test func yamlBecomesRuntimeOptions() throws {
        let configuration = try XDSServerConfiguration.parse(
            yaml: """
                sources: [east, west]
                readinessTimeoutSeconds: 12
                identifier: replica-a
                grpc: {address: "127.0.0.1:18001", maxStreams: 50, maxConnectionAgeSeconds: 600, connectionAgeJitter: 0.2, transport: grpc-swift}
                debounce: {quietMilliseconds: 5, maximumMilliseconds: 50}
                resources: {connectTimeoutMilliseconds: 250, loadBalancing: MAGLEV, keepUnservingEndpoints: true, failoverOrder: "zone,cluster,region"}
                redis: {url: "redis://xds@redis:6379"}
                """)
        #expect(configuration.problems().isEmpty)
        let options = configuration.runtimeOptions()
        #expect(options.pipeline.requiredSources == [try SourceCluster("east"), try SourceCluster("west")])
        #expect(options.pipeline.readinessTimeout == .seconds(12))
        #expect(options.serving.host == "127.0.0.1" && options.serving.port == 18001)
        #expect(options.service.maximumStreams == 50)
        #expect(options.service.controlPlaneIdentifier == "replica-a")
        #expect(options.serving.maximumConnectionAge == .seconds(600))
        #expect(options.serving.transport == .grpcSwift)
        #expect(XDSServerConfiguration().runtimeOptions().serving.transport == .nio, "the NIO listener by default")
        #expect(options.pipeline.debounce == DebounceOptions(quiet: .milliseconds(5), maximum: .milliseconds(50)))
        #expect(options.pipeline.resources.loadBalancing == .maglev)
        #expect(options.pipeline.resources.keepUnservingEndpoints)
        #expect(options.pipeline.resources.failoverOrder.order == [.zone, .cluster, .region])
        #expect(options.pipeline.resources.localityPriorities, "on by default")
        let defaults = XDSServerConfiguration().runtimeOptions().pipeline.resources
        #expect(defaults.failoverOrder == .proximity)
        let off = try XDSServerConfiguration.parse(yaml: "resources: {localityPriorities: false}").runtimeOptions()
        #expect(!off.pipeline.resources.localityPriorities)
    }

    @Test func problemsNameTheField() throws {
        let configuration = try XDSServerConfiguration.parse(
            yaml: """
                sources: [East_1]
                grpc: {address: nowhere, maxStreams: 0, connectionAgeJitter: 2, transport: h3, tls: {certificateChainFile: /etc/hostname, privateKeyFile: /etc/hostname, nodeIdentity: "a**"}}
                debounce: {quietMilliseconds: 500, maximumMilliseconds: 100}
                resources: {loadBalancing: FASTEST, failoverOrder: "zone,nearest"}
                """)
        let problems = configuration.problems().joined(separator: "\n")
        for expected in [
            "sources: East_1", "grpc.address", "grpc.maxStreams", "grpc.connectionAgeJitter",
            "grpc.transport h3 is not one of nio, grpc-swift", "must not be below", "resources.loadBalancing",
            "resources.failoverOrder: failover criterion \"nearest\"", "grpc.tls.nodeIdentity needs grpc.tls.clientCAFile",
            "grpc.tls.nodeIdentity a**: `**` is not a pattern"
        ] {
            #expect(problems.contains(expected), "missing \(expected) in \(problems)")
        }
        #expect(throws: ModelError.self) { try XDSServerConfiguration.parse(yaml: "grpc: [1, 2]") }
    }

    @Test func debounceWaitsForQuietButNeverPastTheMaximum() {
        let debounce = DebounceOptions(quiet: .milliseconds(10), maximum: .milliseconds(100))
        let start = ContinuousClock.now
        #expect(debounce.remaining(first: start, last: start, now: start) == .milliseconds(10))
        #expect(debounce.remaining(first: start, last: start + .milliseconds(95), now: start + .milliseconds(96)) == .milliseconds(4))
        #expect(debounce.remaining(first: start, last: start + .milliseconds(50), now: start + .milliseconds(60)) == .zero)
        #expect(debounce.remaining(first: start, last: start + .milliseconds(99), now: start + .milliseconds(101)) == .zero)
    }

    @Test func connectionAgesAreJitteredWithinBounds() {
        var serving = ServingOptions()
        serving.maximumConnectionAge = .seconds(100)
        serving.connectionAgeJitter = 0.1
        var random = SystemRandomNumberGenerator()
        let ages = (0..<200).compactMap { _ in serving.connectionAge(using: &random) }
        #expect(ages.allSatisfy { $0 >= .seconds(90) && $0 <= .seconds(110) })
        #expect(Set(ages).count > 100, "spread, not one value")
        serving.maximumConnectionAge = nil
        #expect(serving.connectionAge(using: &random) == nil)
    }

    @Test func bootstrapsNameTheXDSServersAndQuoteNames() {
        let yaml = EnvoyBootstrap(
            nodeID: #"web-7d9f "a""#, zone: "us-east-1a", xdsServers: [("legation-xds-server.legation.svc", 18000)],
            listener: (10000, "default/web:http")
        ).yaml
        #expect(yaml.contains(#"node: {id: "web-7d9f \"a\"""#))
        #expect(yaml.contains("type: STRICT_DNS"))
        #expect(yaml.contains(#"route: {cluster: "default/web:http"}"#))
        #expect(EnvoyBootstrap(nodeID: "n", xdsServers: [("127.0.0.1", 1)]).yaml.contains("type: STATIC"))
        #expect(yaml.contains(#"locality: {zone: "us-east-1a"}"#))
        var placed = EnvoyBootstrap(nodeID: "n", zone: "us-east-1a", xdsServers: [("127.0.0.1", 1)])
        placed.region = "us-east-1"
        placed.sourceCluster = "east"
        #expect(placed.yaml.contains(#"locality: {region: "us-east-1", zone: "us-east-1a", sub_zone: "east"}"#))
    }
}
