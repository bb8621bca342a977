import LegationTestSupport
import Shared
import SwiftProtobuf
import Testing

/// The `legation.io/failover` policy: its text, its place in the record, and what readers do with one
/// they cannot use.
@Suite struct FailoverPolicyTests {
    @Test func theAnnotationsTextParsesToCriteriaInOrder() throws {
        #expect(try FailoverPolicy(parsing: "zone,region").order == [.zone, .region])
        #expect(try FailoverPolicy(parsing: " Zone , cluster ,REGION ").order == [.zone, .cluster, .region])
        #expect(
            try FailoverPolicy(parsing: "zone,cluster=east,cluster = west").order == [
                .zone, .source(try SourceCluster("east")), .source(try SourceCluster("west"))
            ])
        #expect(try FailoverPolicy(parsing: "off") == .off)
        #expect(try FailoverPolicy(parsing: " OFF ").isOff)
        #expect(FailoverPolicy.proximity.description == "zone,region")
        #expect(try FailoverPolicy(parsing: "zone , cluster=east").description == "zone,cluster=east", "canonical text")
        #expect(FailoverPolicy.off.description == "off")
    }

    @Test(arguments: [
        ("", "empty"),
        ("   ", "empty"),
        ("zone,", "is not one of"),
        ("zone,,region", "is not one of"),
        ("nearest", "is not one of"),
        ("zone,off", "is not one of"),
        ("zone,zone", "listed twice"),
        ("cluster=east,cluster=east", "listed twice"),
        ("cluster=East_1", "not a DNS label"),
        ("cluster=", "not a DNS label"),
        ("zone,region,cluster,cluster=a,cluster=b,cluster=c,cluster=d,cluster=e,cluster=f", "at most 8")
    ])
    func badTextIsRefusedWithItsReason(_ text: String, _ reason: String) {
        do {
            _ = try FailoverPolicy(parsing: text)
            Issue.record("\(String(reflecting: text)) parsed")
        } catch {
            #expect(error.code == .invalidField)
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    @Test func hugeTextIsRefusedBeforeItIsSplit() {
        #expect(throws: ModelError.self) { try FailoverPolicy(parsing: String(repeating: "zone,", count: 10_000)) }
    }

    @Test func aSetsPolicyTravelsInItsRecordOutsideTheContentHash() throws {
        let plain = Fixtures.endpointSet("web")
        let policy = try FailoverPolicy(parsing: "zone,cluster,region")
        let annotated = try EndpointSet(
            source: plain.source, service: plain.service, ports: plain.ports, endpoints: plain.endpoints, failover: policy)
        #expect(annotated.contentHash == plain.contentHash, "the record's content hash covers ports and endpoints only")
        #expect(annotated != plain)
        #expect(annotated.versionHash != plain.versionHash, "the store's skip-unchanged hash covers the policy")
        #expect(plain.versionHash == plain.contentHash, "unchanged for sets without a policy")
        let off = try EndpointSet(
            source: plain.source, service: plain.service, ports: plain.ports, endpoints: plain.endpoints, failover: .off)
        #expect(off.versionHash != annotated.versionHash && off.versionHash != plain.versionHash)

        let bytes = annotated.recordBytes(epoch: 7, publishedAtUnixMilliseconds: 1)
        #expect(
            bytes == (try annotated.record(epoch: 7, publishedAtUnixMilliseconds: 1).serializedBytes()), "hand-assembled = SwiftProtobuf")
        let decoded = try EndpointSet.decode(recordBytes: bytes, expectedSource: plain.source, expectedService: plain.service)
        #expect(decoded.set == annotated)
        #expect(decoded.set.failover == policy)
        #expect(decoded.ignoredFailover == nil)

        // A reader that predates the field: it sees an unknown field 10 and a content hash that matches.
        var record = try Legation_Store_V1_EndpointSetRecord(serializedBytes: bytes)
        record.failover = ""
        let old = try EndpointSet(recordBytes: try record.serializedBytes(), expectedSource: plain.source)
        #expect(old == plain)
    }

    @Test func aPolicyReadersCannotUseIsIgnoredAndTheRecordKept() throws {
        let plain = Fixtures.endpointSet("web")
        var record = plain.record(epoch: 1, publishedAtUnixMilliseconds: 1)
        record.failover = "zone,nearest-pop"  // a newer writer's criterion, say
        let decoded = try EndpointSet.decode(recordBytes: try record.serializedBytes(), expectedSource: plain.source)
        #expect(decoded.set == plain, "endpoints kept, policy dropped")
        #expect(decoded.ignoredFailover?.message.contains("nearest-pop") == true)

        // The reader's feed applies the set and says what it ignored.
        var feed = SourceFeed(source: plain.source)
        let snapshot = SourceSnapshot(
            source: plain.source, generation: "g", revision: 1, cursor: .start,
            records: [plain.service.description: try record.serializedBytes()],
            canary: nil, canaryError: nil, heartbeat: nil, removed: false)
        let outcome = feed.apply(snapshot)
        #expect(outcome.updates == [.upsert(plain)])
        #expect(outcome.rejections.isEmpty)
        #expect(outcome.ignored.map(\.field) == [plain.service.description])
    }
}
