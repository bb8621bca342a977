import Foundation
import LegationTestSupport
import Testing

@testable import Ingestor

/// The fake API server the other suites lean on, held to the watch contract they assume.
@Suite(.timeLimit(.minutes(1)))
struct FakeKubernetesAPITests {
    /// A watch opened while objects are being applied gets every event after its version, in order,
    /// none twice: whether an event lands in the backlog or is written live, it is written once.
    /// (The fake once registered a watch after writing its backlog; events applied in between reached
    /// neither, and an end-to-end test waited for a slice that never came.)
    @Test func aWatchOpenedWhileObjectsAreAppliedMissesNothing() async throws {
        let api = try await FakeKubernetesAPI()
        let client = try KubernetesClient(KubernetesConnection(server: api.baseURL), readTimeout: .seconds(10))
        defer {
            Task {
                await client.shutdown()
                await api.shutdown()
            }
        }
        for round in 0..<20 {
            let from = api.resourceVersion
            let count = 40
            let applying = Task.detached {
                for index in 0..<count {
                    let json =
                        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s-\#(round)-\#(index)","namespace":"n"},"spec":{"ports":[{"port":80}]}}"#
                    try api.apply(.services, json: Data(json.utf8))
                }
            }
            var versions: [Int] = []
            let deadline = ContinuousClock.now + .seconds(10)
            watching: for try await batch in client.watch(
                ServiceObject.self, path: "/api/v1/services", resourceVersion: String(from), timeoutSeconds: 10)
            {
                for result in batch {
                    if case .added(let service) = try result.get(), let version = service.metadata.resourceVersion.flatMap(Int.init) {
                        versions.append(version)
                    }
                }
                if versions.count >= count || ContinuousClock.now > deadline { break watching }
            }
            try await applying.value
            #expect(versions == Array((from + 1)...(from + count)), "round \(round): \(versions.count) of \(count) events")
        }
    }
}
