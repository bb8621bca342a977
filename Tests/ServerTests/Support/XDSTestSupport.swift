import EnvoyAPI
import Server
import Shared
import SwiftProtobuf

/// Builds tables and requests for the protocol tests: endpoint sets in, snapshots out.
struct XDSFixture {
    static let east = try! SourceCluster("east")
    static let west = try! SourceCluster("west")
    static let http = try! ServicePort(name: "http", port: 80)

    var table = ResourceTable()
    private(set) var snapshot = ResourceSnapshot.empty

    static func service(_ name: String) -> ServiceKey { try! ServiceKey(namespace: "default", name: name) }

    static func set(
        _ service: String, _ addresses: [String], source: SourceCluster = east, conditions: Endpoint.Conditions = .ready,
        port: ServicePort = http, zone: String = "zone-a"
    ) -> EndpointSet {
        let endpoints = addresses.map {
            try! Endpoint(address: $0, targetPorts: [8080], zone: zone, targetPod: "default/\($0)", conditions: conditions)
        }
        return try! EndpointSet(source: source, service: Self.service(service), ports: [port], endpoints: endpoints)
    }

    /// Applies sets and removals, then takes the next snapshot.
    @discardableResult
    mutating func publish(_ sets: [EndpointSet] = [], removing: [String] = [], source: SourceCluster = east) -> ResourceSnapshot {
        var updates = sets.map(EndpointChange.upsert)
        updates += removing.map { .remove(Self.service($0)) }
        table.apply(updates, from: source)
        if let next = table.snapshot() { snapshot = next }
        return snapshot
    }
}

func request(
    _ type: ResourceType?, names: [String] = [], version: String = "", nonce: String = "", nack: String? = nil,
    node: String? = "sidecar-1"
) -> Envoy_Service_Discovery_V3_DiscoveryRequest {
    var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
    if let type { request.typeURL = type.typeURL }
    request.resourceNames = names
    request.versionInfo = version
    request.responseNonce = nonce
    if let node {
        request.node.id = node
        request.node.cluster = "test"
    }
    if let nack { request.errorDetail = refusal(nack) }
    return request
}

func deltaRequest(
    _ type: ResourceType?, subscribe: [String] = [], unsubscribe: [String] = [], initial: [String: String] = [:], nonce: String = "",
    nack: String? = nil, node: String? = "sidecar-1"
) -> Envoy_Service_Discovery_V3_DeltaDiscoveryRequest {
    var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
    if let type { request.typeURL = type.typeURL }
    request.resourceNamesSubscribe = subscribe
    request.resourceNamesUnsubscribe = unsubscribe
    request.initialResourceVersions = initial
    request.responseNonce = nonce
    if let node { request.node.id = node }
    if let nack { request.errorDetail = refusal(nack) }
    return request
}

/// A NACK's `error_detail`, as Envoy sends it (INVALID_ARGUMENT and the reason).
func refusal(_ message: String) -> Google_Rpc_Status {
    .with {
        $0.code = 3
        $0.message = message
    }
}

extension SotWStreamStateMachine {
    /// The machine fed a wire request, as the serving edge feeds it.
    mutating func onRequest(_ wire: Envoy_Service_Discovery_V3_DiscoveryRequest, snapshot: ResourceSnapshot) -> Action {
        onRequest(Self.request(wire), snapshot: snapshot)
    }
}

extension DeltaStreamStateMachine {
    mutating func onRequest(_ wire: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, snapshot: ResourceSnapshot) -> Action {
        onRequest(Self.request(wire), snapshot: snapshot)
    }
}

extension OutboundResponse {
    var names: [String] { resources.map(\.name) }

    /// The bytes decoded as Envoy would read them.
    func decoded() throws -> Envoy_Service_Discovery_V3_DiscoveryResponse {
        try Envoy_Service_Discovery_V3_DiscoveryResponse(serializedBytes: encoded(controlPlane: "legation-test"))
    }
}
