import EnvoyAPI
import Foundation
import LegationTestSupport
import Server
import Shared
import SwiftProtobuf
import Testing

@Suite struct ResourceBuilderTests {
    typealias F = XDSFixture

    func members(_ conditions: [Endpoint.Conditions], source: SourceCluster = F.east, zone: String = "us-east-1a") -> [EndpointIndex.Member]
    {
        var index = EndpointIndex()
        let endpoints = conditions.enumerated().map { offset, condition in
            try! Endpoint(
                address: "10.0.0.\(offset + 1)", targetPorts: [8080], zone: zone, node: "node-\(offset)",
                targetPod: "default/pod-\(offset)", conditions: condition)
        }
        _ = index.apply(
            [.upsert(try! EndpointSet(source: source, service: F.service("web"), ports: [F.http], endpoints: endpoints))], from: source)
        return index.members(of: ClusterKey(service: F.service("web"), port: F.http))
    }

    /// The hand-written load assignment encoding is byte for byte SwiftProtobuf's (deterministic) one, over
    /// random clusters: zones with and without regions, two sources, hostnames, nodes and pods present
    /// or not, every condition, ports from 1 to 65535, both unready policies.
    @Test func loadAssignmentBytesAreSwiftProtobufsBytes() async throws {
        var random = SplitMix64(seed: 0xC1A)
        var deterministic = BinaryEncodingOptions()
        deterministic.useDeterministicOrdering = true
        let zones = ["", "us-east-1a", "zone-b", "europe-west4-c", "z"]
        let sources = [F.east, F.west]
        let conditions: [Endpoint.Conditions] = [
            .ready, .init(ready: false, serving: true, terminating: true),
            .init(ready: false, serving: false, terminating: true), .init(ready: false, serving: false, terminating: false)
        ]
        for round in 0..<200 {
            if round % 20 == 0 { await Task.yield() }  // two cores: let timing-bound suites run too
            var index = EndpointIndex()
            let service = F.service("svc-\(round % 7)")
            let port = try ServicePort(name: "http", port: 80)
            for source in sources {
                let count = Int.random(in: 0..<40, using: &random)
                let endpoints = try (0..<count).map { e in
                    try Endpoint(
                        address: Bool.random(using: &random) ? "10.\(round % 250).\(e / 250).\(e % 250 + 1)" : "fd00::\(round):\(e + 1)",
                        targetPorts: [[1, 80, 8080, 65535].randomElement(using: &random)!],
                        zone: zones.randomElement(using: &random)!,
                        node: Bool.random(using: &random) ? "node-\(e % 5)" : "",
                        hostname: Int.random(in: 0..<4, using: &random) == 0 ? "host-\(e)" : "",
                        targetPod: Bool.random(using: &random) ? "default/pod-\(e)" : "",
                        conditions: conditions.randomElement(using: &random)!)
                }
                _ = index.apply(
                    [.upsert(try EndpointSet(source: source, service: service, ports: [port], endpoints: endpoints))], from: source)
            }
            let key = ClusterKey(service: service, port: port)
            var options = ResourceOptions()
            options.keepUnservingEndpoints = Bool.random(using: &random)
            let builder = ResourceBuilder(options: options)
            let members = index.members(of: key)
            let expected: [UInt8] = try builder.loadAssignment(key, members: members).serializedBytes(options: deterministic)
            let actual = builder.loadAssignmentBytes(key, members: members)
            let same = actual == expected
            #expect(same, "round \(round): \(actual.count) bytes written by hand, \(expected.count) by SwiftProtobuf")
        }
    }

    /// What the server serves: the hand-encoded bytes, decoded.
    func served(_ builder: ResourceBuilder, _ key: ClusterKey, _ members: [EndpointIndex.Member]) throws
        -> Envoy_Config_Endpoint_V3_ClusterLoadAssignment
    {
        try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(serializedBytes: builder.loadAssignmentBytes(key, members: members))
    }

    @Test func conditionsMapToEnvoyHealthAndNotServingIsLeftOut() throws {
        let key = ClusterKey(service: F.service("web"), port: F.http)
        let all = members([
            .ready, .init(ready: false, serving: true, terminating: true), .init(ready: false, serving: false, terminating: true)
        ])
        let assignment = try served(ResourceBuilder(), key, all)
        #expect(assignment.clusterName == "default/web:http")
        let endpoints = assignment.endpoints.flatMap(\.lbEndpoints)
        #expect(endpoints.map(\.healthStatus) == [.healthy, .draining])
        #expect(endpoints.map(\.endpoint.address.socketAddress.portValue) == [8080, 8080])

        var keep = ResourceOptions()
        keep.keepUnservingEndpoints = true
        let kept = try served(ResourceBuilder(options: keep), key, all).endpoints.flatMap(\.lbEndpoints)
        #expect(kept.map(\.healthStatus) == [.healthy, .draining, .unhealthy])
    }

    @Test func localitiesAreZoneAndSourceClusterWithMetadata() throws {
        let key = ClusterKey(service: F.service("web"), port: F.http)
        let assignment = try served(
            ResourceBuilder(), key, members([.ready], zone: "us-east-1b") + members([.ready], source: F.west, zone: "us-west2-a"))
        #expect(assignment.endpoints.map(\.locality.zone) == ["us-east-1b", "us-west2-a"])
        #expect(assignment.endpoints.map(\.locality.region) == ["us-east-1", "us-west2"])
        #expect(assignment.endpoints.map(\.locality.subZone) == ["east", "west"])
        let metadata = try #require(assignment.endpoints[1].lbEndpoints[0].metadata.filterMetadata["legation"])
        #expect(metadata.fields["source"]?.stringValue == "west")
        #expect(metadata.fields["pod"]?.stringValue == "default/pod-0")
        #expect(metadata.fields["node"]?.stringValue == "node-0")
    }

    @Test func regionsFollowCloudZoneNames() {
        #expect(ResourceBuilder.region(ofZone: "us-east-1a") == "us-east-1")
        #expect(ResourceBuilder.region(ofZone: "europe-west4-b") == "europe-west4")
        #expect(ResourceBuilder.region(ofZone: "eastus-2") == "eastus")
        #expect(ResourceBuilder.region(ofZone: "rack7") == "")
        #expect(ResourceBuilder.region(ofZone: "") == "")
    }

    @Test func clustersUseADSAndTheConfiguredDefaults() throws {
        var options = ResourceOptions()
        options.connectTimeoutMilliseconds = 2500
        options.loadBalancing = .leastRequest
        let key = ClusterKey(service: F.service("web"), port: F.http)
        let cluster = ResourceBuilder(options: options).cluster(key, port: F.http)
        #expect(cluster.connectTimeout.seconds == 2 && cluster.connectTimeout.nanos == 500_000_000)
        #expect(cluster.lbPolicy == .leastRequest)
        #expect(cluster.edsClusterConfig.edsConfig.resourceApiVersion == .v3)
        #expect(cluster.typedExtensionProtocolOptions.isEmpty, "HTTP/1 port")
        let h2c = try ServicePort(name: "grpc", port: 9090, appProtocol: "kubernetes.io/h2c")
        let grpc = ResourceBuilder().cluster(ClusterKey(service: F.service("web"), port: h2c), port: h2c)
        let any = try #require(grpc.typedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"])
        let protocolOptions = try Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions(unpackingAny: any)
        if case .http2ProtocolOptions? = protocolOptions.explicitHTTPConfig.protocolConfig {} else { Issue.record("not HTTP/2") }
        #expect(ResourceOptions().problems().isEmpty)
        options.connectTimeoutMilliseconds = 0
        #expect(options.problems().count == 1)
    }

    @Test func encodedResponsesAreWhatSwiftProtobufWouldWrite() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1", "10.0.0.2"]), F.set("api", ["10.0.0.3"])])
        let resources = fixture.snapshot.all(.endpoint).values.sorted { $0.name < $1.name }
        let response = OutboundResponse(type: .endpoint, versionInfo: "abc", nonce: "7", resources: resources)
        var expected = Envoy_Service_Discovery_V3_DiscoveryResponse()
        expected.versionInfo = "abc"
        expected.typeURL = ResourceType.endpoint.typeURL
        expected.nonce = "7"
        expected.controlPlane.identifier = "replica-a"
        expected.resources = resources.map { resource in
            var any = Google_Protobuf_Any()
            any.typeURL = resource.type.typeURL
            any.value = Data(resource.resource)
            return any
        }
        #expect(response.encoded(controlPlane: "replica-a") == Array(try expected.serializedData()))
        #expect(try response.decoded().resources.count == 2)
    }
}

@Suite struct ProxylessResourceTests {
    typealias F = XDSFixture

    @Test func grpcPortsGetAnAPIListenerAndARouteToTheirCluster() throws {
        var fixture = XDSFixture()
        let grpc = try ServicePort(name: "grpc", port: 9090, appProtocol: "grpc")
        fixture.publish([F.set("checkout", ["10.0.0.1"], port: grpc), F.set("web", ["10.0.0.2"])])
        #expect(fixture.snapshot.all(.listener).keys.sorted() == ["checkout.default:9090"], "HTTP/1 ports get none")
        let listener = try Envoy_Config_Listener_V3_Listener(
            serializedBytes: try #require(fixture.snapshot.resource(.listener, named: "checkout.default:9090")).resource)
        let manager = try Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(
            unpackingAny: listener.apiListener.apiListener)
        #expect(manager.rds.routeConfigName == "checkout.default:9090")
        #expect(manager.rds.configSource.ads == Envoy_Config_Core_V3_AggregatedConfigSource())
        #expect(manager.httpFilters.map(\.name) == ["envoy.filters.http.router"])
        let route = try Envoy_Config_Route_V3_RouteConfiguration(
            serializedBytes: try #require(fixture.snapshot.resource(.route, named: "checkout.default:9090")).resource)
        #expect(route.virtualHosts.first?.routes.first?.route.cluster == "default/checkout:grpc")
        let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(
            serializedBytes: try #require(fixture.snapshot.resource(.endpoint, named: "default/checkout:grpc")).resource)
        #expect(assignment.endpoints.map(\.loadBalancingWeight.value) == [1], "gRPC clients drop localities without a weight")

        // The port stops being gRPC: listener and route go away.
        fixture.publish([F.set("checkout", ["10.0.0.1"], port: try ServicePort(name: "grpc", port: 9090))])
        #expect(fixture.snapshot.all(.listener).isEmpty && fixture.snapshot.all(.route).isEmpty)
    }

    @Test func aProxylessClientGetsListenerRouteClusterAndEndpointsInOrder() throws {
        var fixture = XDSFixture()
        let grpc = try ServicePort(name: "grpc", port: 9090, appProtocol: "grpc")
        fixture.publish([F.set("checkout", ["10.0.0.1"], port: grpc)])
        var machine = SotWStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        // gRPC names its resources explicitly and sends the node only once.
        let lds = machine.onRequest(request(.listener, names: ["checkout.default:9090"]), snapshot: fixture.snapshot).responses
        #expect(lds.map(\.names) == [["checkout.default:9090"]])
        let rds = machine.onRequest(request(.route, names: ["checkout.default:9090"], node: nil), snapshot: fixture.snapshot).responses
        #expect(rds.map(\.names) == [["checkout.default:9090"]])
        let cds = machine.onRequest(request(.cluster, names: ["default/checkout:grpc"], node: nil), snapshot: fixture.snapshot).responses
        #expect(cds.map(\.names) == [["default/checkout:grpc"]])
        let eds = machine.onRequest(request(.endpoint, names: ["default/checkout:grpc"], node: nil), snapshot: fixture.snapshot).responses
        #expect(eds.map(\.names) == [["default/checkout:grpc"]])
        #expect(machine.node?.id == "sidecar-1")
    }
}
