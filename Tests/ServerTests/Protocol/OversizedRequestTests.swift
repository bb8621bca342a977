import EnvoyAPI
import Server
import Shared
import Testing

/// The issue's oversized xDS inputs, at and beyond the limits: a clear refusal for that stream, and the
/// largest accepted request answered.
@Suite struct OversizedRequestTests {
    typealias F = XDSFixture

    @Test func oneHundredThousandNamesAreServedAndOneMoreIsRefused() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        let names = (0..<100_000).map { "default/svc-\($0):http" } + ["default/web:http"]
        var machine = SotWStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        let refused = machine.onRequest(request(.endpoint, names: names), snapshot: fixture.snapshot).error
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.message.contains("100001 resource names") == true)

        var atLimit = SotWStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        let answered = atLimit.onRequest(request(.endpoint, names: Array(names.suffix(100_000))), snapshot: fixture.snapshot).responses
        #expect(answered.map { $0.resources.map(\.name) } == [["default/web:http"]], "the one that exists is sent")

        var delta = DeltaStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        var message = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        message.typeURL = ResourceType.endpoint.typeURL
        message.node.id = "sidecar-1"
        message.resourceNamesSubscribe = names
        guard case .fail(let error) = delta.onRequest(message, snapshot: fixture.snapshot) else {
            Issue.record("delta accepted 100,001 names")
            return
        }
        #expect(error.code == .resourceExhausted)
    }

    @Test func aOneMegabyteNameIsRefusedNamingItsSize() {
        let fixture = XDSFixture()
        let huge = String(repeating: "n", count: 1 << 20)
        var machine = SotWStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        let error = machine.onRequest(request(.endpoint, names: [huge]), snapshot: fixture.snapshot).error
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("1048576 bytes") == true)
        #expect((error?.message.utf8.count ?? .max) < 200, "the error does not echo the name")
    }
}
