import EnvoyAPI
import SwiftProtobuf
import Testing

/// The generated Envoy API must read and write the messages real Envoys exchange with Legation.
@Suite struct RoundTripTests {
    /// A first ADS request as Envoy 1.3x sends it (node, locality, wildcard CDS), in proto3 JSON.
    static let discoveryRequestJSON = """
        {
          "versionInfo": "",
          "node": {
            "id": "sidecar~10.1.2.3~web-7d9f~default.svc.cluster.local",
            "cluster": "web",
            "metadata": {"ISTIO_VERSION": "none", "app": "web"},
            "locality": {"region": "us-east-1", "zone": "us-east-1a", "subZone": "cluster-a"},
            "userAgentName": "envoy",
            "userAgentBuildVersion": {"version": {"majorNumber": 1, "minorNumber": 36, "patch": 2}}
          },
          "typeUrl": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
          "responseNonce": "",
          "resourceNames": []
        }
        """

    static let clusterLoadAssignmentJSON = """
        {
          "clusterName": "default/web/http",
          "endpoints": [
            {
              "locality": {"region": "us-east-1", "zone": "us-east-1a", "subZone": "cluster-a"},
              "lbEndpoints": [
                {
                  "endpoint": {"address": {"socketAddress": {"address": "10.1.2.3", "portValue": 8080}},
                               "hostname": "web-7d9f"},
                  "healthStatus": "HEALTHY",
                  "metadata": {"filterMetadata": {"legation": {"source_cluster": "cluster-a"}}}
                },
                {
                  "endpoint": {"address": {"socketAddress": {"address": "fd00::5", "portValue": 8080}}},
                  "healthStatus": "DRAINING"
                }
              ],
              "loadBalancingWeight": 1,
              "priority": 0
            }
          ]
        }
        """

    @Test func discoveryRequestRoundTripsThroughBinary() throws {
        let request = try Envoy_Service_Discovery_V3_DiscoveryRequest(jsonString: Self.discoveryRequestJSON)
        #expect(request.node.locality.subZone == "cluster-a")
        #expect(request.node.userAgentBuildVersion.version.minorNumber == 36)
        #expect(request.typeURL == "type.googleapis.com/envoy.config.cluster.v3.Cluster")

        let bytes: [UInt8] = try request.serializedBytes()
        let decoded = try Envoy_Service_Discovery_V3_DiscoveryRequest(serializedBytes: bytes)
        #expect(decoded == request)
        #expect(decoded.node.metadata.fields["app"]?.stringValue == "web")
    }

    @Test func clusterLoadAssignmentRoundTripsThroughBinaryAndAny() throws {
        let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(
            jsonString: Self.clusterLoadAssignmentJSON)
        let endpoints = assignment.endpoints[0].lbEndpoints
        #expect(endpoints.count == 2)
        #expect(endpoints[1].healthStatus == .draining)
        #expect(endpoints[0].endpoint.address.socketAddress.portValue == 8080)

        // As a DiscoveryResponse carries it: wrapped in Any, then on the wire and back.
        var response = Envoy_Service_Discovery_V3_DiscoveryResponse()
        response.versionInfo = "1"
        response.typeURL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
        response.resources = [try Google_Protobuf_Any(message: assignment)]
        response.nonce = "n1"
        let wire: [UInt8] = try response.serializedBytes()

        let received = try Envoy_Service_Discovery_V3_DiscoveryResponse(serializedBytes: wire)
        #expect(received.resources[0].typeURL == response.typeURL)
        let unpacked = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: received.resources[0])
        #expect(unpacked == assignment)
        #expect(
            unpacked.endpoints[0].lbEndpoints[0].metadata.filterMetadata["legation"]?
                .fields["source_cluster"]?.stringValue == "cluster-a")
    }

    @Test func garbageIsAnErrorNotACrash() {
        #expect(throws: (any Error).self) {
            try Envoy_Service_Discovery_V3_DiscoveryRequest(serializedBytes: [0x0A, 0xFF, 0xFF, 0xFF, 0x0F])
        }
    }
}
