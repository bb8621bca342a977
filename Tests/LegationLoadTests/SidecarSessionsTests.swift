import EnvoyAPI
import Testing

@testable import LegationLoad

/// A simulated sidecar's requests as bytes: the names an ACK repeats are encoded once and reused, and
/// every request still decodes to exactly what the session asked for.
@Suite struct SotWSessionEncodingTests {
    @Test func requestsDecodeToWhatTheSessionAsked() throws {
        let sidecar = SimulatedSidecar(id: 1, delta: false)
        let session = SimulatedSidecar.SotWSession(sidecar, node: .with { $0.id = "bench-sidecar-1" })
        let names = (0..<100).map { "default/svc-\($0):http" }
        var requests = session.start()
        for nonce in 1...3 {
            var ack = Envoy_Service_Discovery_V3_DiscoveryRequest()
            ack.typeURL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            ack.versionInfo = "v\(nonce)"
            ack.responseNonce = String(nonce)
            ack.resourceNames = nonce == 3 ? Array(names.dropLast()) : names  // a new subscription in the third
            requests.append(ack)
        }
        let encoded = session.encode(requests)
        #expect(encoded.count == requests.count)
        for (bytes, request) in zip(encoded, requests) {
            #expect(try Envoy_Service_Discovery_V3_DiscoveryRequest(serializedBytes: bytes) == request)
        }
    }
}
