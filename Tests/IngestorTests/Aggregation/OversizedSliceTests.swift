import Foundation
import LegationTestSupport
import Shared
import Testing

@testable import Ingestor

/// A slice of 100,000 endpoints (the most one set may hold) is read and published; one more endpoint makes
/// the service's set too large: a clear rejection, and the last good set stands.
@Suite struct OversizedSliceTests {
    static func sliceJSON(endpoints: Int, version: Int) -> [UInt8] {
        var text =
            #"{"kind":"EndpointSlice","metadata":{"name":"big-1","namespace":"default","resourceVersion":"\#(version)","labels":{"kubernetes.io/service-name":"big"}},"addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":["#
        text.reserveCapacity(endpoints * 60)
        for index in 0..<endpoints {
            if index > 0 { text += "," }
            text += #"{"addresses":["10.\#(index >> 16 & 255).\#(index >> 8 & 255).\#(index & 255)"],"conditions":{"ready":true}}"#
        }
        return Array((text + "]}").utf8)
    }

    @Test func theLargestSetIsPublishedAndALargerOneIsRejectedKeepingTheLast() throws {
        var aggregator = EndpointSliceAggregator(source: try SourceCluster("east"))
        _ = aggregator.upsert(
            service: try ServiceObject(
                json: Array(
                    #"{"metadata":{"name":"big","namespace":"default","resourceVersion":"1"},"spec":{"ports":[{"name":"http","port":80}]}}"#
                        .utf8)))
        let largest = try EndpointSliceObject(json: Self.sliceJSON(endpoints: EndpointSet.maximumEndpoints, version: 2))
        let accepted = aggregator.upsert(slice: largest)
        #expect(accepted.rejections.isEmpty)
        guard case .upsert(let set)? = accepted.changes.first else {
            Issue.record("the largest set was not published: \(accepted.rejections)")
            return
        }
        #expect(set.endpoints.count == EndpointSet.maximumEndpoints)

        let larger = try EndpointSliceObject(json: Self.sliceJSON(endpoints: EndpointSet.maximumEndpoints + 1, version: 3))
        let refused = aggregator.upsert(slice: larger)
        #expect(refused.changes.isEmpty, "nothing is published for the oversized set")
        #expect(refused.rejections.contains { $0.reason.contains("at most \(EndpointSet.maximumEndpoints)") })
        #expect(aggregator.sets.values.first?.endpoints.count == EndpointSet.maximumEndpoints, "the last good set stands")
    }
}
