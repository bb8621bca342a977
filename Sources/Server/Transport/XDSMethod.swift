import EnvoyAPI
import Logging
import NIOCore
import NIOHPACK
import NIOSSL
import Shared
import Synchronization
import X509

/// The six xDS methods, by HTTP/2 path.
enum XDSMethod {
    case sotw(XDSHub.StreamKind, Set<ResourceType>)
    case delta(XDSHub.StreamKind, Set<ResourceType>)

    init?(path: String) {
        let all = Set(ResourceType.allCases)
        switch path {
        case "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources": self = .sotw(.ads, all)
        case "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters": self = .sotw(.cds, [.cluster])
        case "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints": self = .sotw(.eds, [.endpoint])
        case "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources": self = .delta(.adsDelta, all)
        case "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters": self = .delta(.cdsDelta, [.cluster])
        case "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints": self = .delta(.edsDelta, [.endpoint])
        default: return nil
        }
    }

    /// Registers a stream with the hub. - Returns: nil when the server has its most streams open.
    func makeSession(
        shared: XDSStream.Shared, peer: String, identities: [String], notify: @escaping @Sendable (XDSHub.Signal) -> Void
    ) -> WireSession? {
        switch self {
        case .sotw(let kind, let types):
            WireStreamSession(
                SotWStreamStateMachine(allowedTypes: types, limits: shared.options.limits), kind: kind, shared: shared, peer: peer,
                identities: identities, notify: notify
            ).map(WireSession.sotw)
        case .delta(let kind, let types):
            WireStreamSession(
                DeltaStreamStateMachine(allowedTypes: types, limits: shared.options.limits), kind: kind, shared: shared, peer: peer,
                identities: identities, notify: notify
            ).map(WireSession.delta)
        }
    }
}
