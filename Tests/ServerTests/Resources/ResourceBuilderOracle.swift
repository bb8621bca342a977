import EnvoyAPI
import Server
import Shared
import SwiftProtobuf

// The oracle of the hand-written load assignment encoding: the same message built with SwiftProtobuf.
// Only the tests have it; the server encodes by hand (`ResourceBuilder.loadAssignmentParts`).

extension ResourceBuilder {
    /// The `ClusterLoadAssignment`: one locality per (zone, source cluster), the source cluster as
    /// sub-zone; ready → HEALTHY, serving and terminating → DRAINING, not serving → left out (or
    /// UNHEALTHY); each endpoint's metadata names its source cluster and pod.
    func loadAssignment(_ key: ClusterKey, members: [EndpointIndex.Member]) -> Envoy_Config_Endpoint_V3_ClusterLoadAssignment {
        var assignment = Envoy_Config_Endpoint_V3_ClusterLoadAssignment()
        assignment.clusterName = key.name
        var byLocality: [OracleLocality: [Envoy_Config_Endpoint_V3_LbEndpoint]] = [:]
        for member in members {
            guard let health = EndpointHealth.of(member.endpoint.conditions, keepUnready: options.keepUnservingEndpoints) else {
                continue
            }
            byLocality[OracleLocality(zone: member.endpoint.zone, source: member.source), default: []]
                .append(lbEndpoint(member, health: health))
        }
        for (locality, endpoints) in byLocality.sorted(by: { $0.key < $1.key }) {
            var group = Envoy_Config_Endpoint_V3_LocalityLbEndpoints()
            group.locality = .with {
                $0.region = Self.region(ofZone: locality.zone)
                $0.zone = locality.zone
                $0.subZone = locality.source.name
            }
            group.lbEndpoints = endpoints
            // Weighted by size: Envoy ignores weights unless locality-weighted balancing is on; gRPC
            // clients drop localities without one (gRFC A27).
            group.loadBalancingWeight = Google_Protobuf_UInt32Value(UInt32(endpoints.count))
            assignment.endpoints.append(group)
        }
        return assignment
    }

    func lbEndpoint(_ member: EndpointIndex.Member, health: EndpointHealth) -> Envoy_Config_Endpoint_V3_LbEndpoint {
        var lbEndpoint = Envoy_Config_Endpoint_V3_LbEndpoint()
        lbEndpoint.endpoint = .with {
            $0.address = .with {
                $0.socketAddress = .with {
                    $0.address = member.endpoint.address
                    $0.portValue = UInt32(member.targetPort)
                }
            }
            if !member.endpoint.hostname.isEmpty { $0.hostname = member.endpoint.hostname }
        }
        lbEndpoint.healthStatus =
            switch health {
            case .healthy: .healthy
            case .draining: .draining
            case .unhealthy: .unhealthy
            }
        var fields: [String: Google_Protobuf_Value] = ["source": Google_Protobuf_Value(stringValue: member.source.name)]
        if !member.endpoint.targetPod.isEmpty { fields["pod"] = Google_Protobuf_Value(stringValue: member.endpoint.targetPod) }
        if !member.endpoint.node.isEmpty { fields["node"] = Google_Protobuf_Value(stringValue: member.endpoint.node) }
        lbEndpoint.metadata.filterMetadata[ResourceBuilder.metadataNamespace] = Google_Protobuf_Struct(fields: fields)
        return lbEndpoint
    }
}

/// A locality of the oracle's assignment, ordered as the server orders them: zone, then source.
private struct OracleLocality: Hashable, Comparable {
    var zone: String
    var source: SourceCluster
    static func < (lhs: Self, rhs: Self) -> Bool { (lhs.zone, lhs.source) < (rhs.zone, rhs.source) }
}
