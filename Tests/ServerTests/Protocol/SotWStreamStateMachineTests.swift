import EnvoyAPI
import Server
import Shared
import Testing

/// Every rule of design §3, driven through the state machine with no sockets.
@Suite struct SotWStreamStateMachineTests {
    typealias F = XDSFixture
    let ads = Set(ResourceType.allCases)

    /// A stream that has CDS (wildcard) and EDS for `web` ACKed.
    func connected(_ fixture: inout XDSFixture) -> SotWStreamStateMachine {
        var machine = SotWStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(request(.cluster), snapshot: fixture.snapshot).responses
        #expect(cds.count == 1)
        _ = machine.onRequest(request(.cluster, version: cds[0].versionInfo, nonce: cds[0].nonce), snapshot: fixture.snapshot)
        let names = cds[0].names
        let eds = machine.onRequest(request(.endpoint, names: names), snapshot: fixture.snapshot).responses
        #expect(eds.count == 1)
        _ = machine.onRequest(
            request(.endpoint, names: names, version: eds[0].versionInfo, nonce: eds[0].nonce), snapshot: fixture.snapshot)
        return machine
    }

    @Test func firstRequestsGetFullCDSThenTheRequestedAssignments() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = SotWStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(request(.cluster), snapshot: fixture.snapshot).responses
        #expect(cds.map(\.names) == [["default/api:http", "default/web:http"]])
        let decoded = try cds[0].decoded()
        #expect(decoded.typeURL == ResourceType.cluster.typeURL)
        #expect(decoded.resources.count == 2)
        #expect(decoded.nonce == cds[0].nonce)
        #expect(decoded.controlPlane.identifier == "legation-test")
        let cluster = try Envoy_Config_Cluster_V3_Cluster(unpackingAny: decoded.resources[1])
        #expect(cluster.name == "default/web:http")
        #expect(cluster.type == .eds)
        #expect(cluster.edsClusterConfig.edsConfig.ads == Envoy_Config_Core_V3_AggregatedConfigSource())

        let eds = machine.onRequest(request(.endpoint, names: ["default/web:http"]), snapshot: fixture.snapshot).responses
        #expect(eds.map(\.names) == [["default/web:http"]], "only what is subscribed")
        #expect(eds[0].nonce != cds[0].nonce)
    }

    @Test func ackedStateIsNotSentAgainWithoutAChange() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        #expect(machine.onSnapshot(fixture.snapshot) == .none)
        fixture.publish([F.set("web", ["10.0.0.1"])])
        #expect(machine.onSnapshot(fixture.snapshot) == .none, "same content, no response")
        #expect(machine.types[.cluster]?.ackCount == 1)
    }

    @Test func anEndpointChangeSendsOnlyThatAssignment() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = SotWStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(request(.cluster), snapshot: fixture.snapshot).responses[0]
        _ = machine.onRequest(request(.cluster, version: cds.versionInfo, nonce: cds.nonce), snapshot: fixture.snapshot)
        let names = ["default/api:http", "default/web:http"]
        let eds = machine.onRequest(request(.endpoint, names: names), snapshot: fixture.snapshot).responses[0]
        #expect(eds.names == names)
        _ = machine.onRequest(request(.endpoint, names: names, version: eds.versionInfo, nonce: eds.nonce), snapshot: fixture.snapshot)

        fixture.publish([F.set("web", ["10.0.0.1", "10.0.0.9"])])
        let push = machine.onSnapshot(fixture.snapshot).responses
        #expect(push.map(\.type) == [.endpoint], "the cluster itself did not change")
        #expect(push[0].names == ["default/web:http"])
        #expect(push[0].versionInfo != eds.versionInfo)
    }

    @Test func oneResponseInFlightPerTypeAndChangesCoalesceUntilTheAck() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        fixture.publish([F.set("web", ["10.0.0.2"])])
        let first = machine.onSnapshot(fixture.snapshot).responses
        #expect(first.count == 1)
        fixture.publish([F.set("web", ["10.0.0.3"])])
        #expect(machine.onSnapshot(fixture.snapshot) == .none, "waits for the ACK")
        fixture.publish([F.set("web", ["10.0.0.4"])])
        #expect(machine.onSnapshot(fixture.snapshot) == .none)
        let next = machine.onRequest(
            request(.endpoint, names: ["default/web:http"], version: first[0].versionInfo, nonce: first[0].nonce),
            snapshot: fixture.snapshot
        ).responses
        #expect(next.count == 1, "the ACK releases one response with the latest state")
        #expect(next[0].resources == [fixture.snapshot.resource(.endpoint, named: "default/web:http")!])
    }

    @Test func aNackedVersionIsNeverSentAgainAndTheAckedOneStays() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        let acked = machine.types[.endpoint]!.acked["default/web:http"]!

        fixture.publish([F.set("web", ["10.0.0.2"])])
        let bad = machine.onSnapshot(fixture.snapshot).responses[0]
        let afterNack = machine.onRequest(
            request(.endpoint, names: ["default/web:http"], version: "whatever-it-had", nonce: bad.nonce, nack: "bad endpoint"),
            snapshot: fixture.snapshot)
        #expect(afterNack == .none, "the refused version is not re-sent")
        let state = machine.types[.endpoint]!
        #expect(state.nackCount == 1)
        #expect(state.lastNack == "bad endpoint")
        #expect(state.sent["default/web:http"] == acked, "the client keeps the last ACKed version")
        #expect(machine.onSnapshot(fixture.snapshot) == .none)

        fixture.publish([F.set("web", ["10.0.0.3"])])
        let fixed = machine.onSnapshot(fixture.snapshot).responses
        #expect(fixed.map(\.names) == [["default/web:http"]], "a new version is sent")
    }

    /// A NACK of a stream's very first response: the client holds nothing, the refused versions are
    /// not sent again, and the next change is.
    @Test func aNackedFirstResponseLeavesTheClientHoldingNothing() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = SotWStreamStateMachine(allowedTypes: ads)
        let names = ["default/api:http", "default/web:http"]
        let first = machine.onRequest(request(.endpoint, names: names), snapshot: fixture.snapshot).responses[0]
        #expect(first.names == names)
        #expect(machine.types[.endpoint]!.acked.isEmpty)
        #expect(machine.onRequest(request(.endpoint, names: names, nonce: first.nonce, nack: "no"), snapshot: fixture.snapshot) == .none)
        let state = machine.types[.endpoint]!
        #expect(state.sent.isEmpty && state.acked.isEmpty, "the client kept nothing")
        #expect(state.nacked.count == 2)
        #expect(machine.onSnapshot(fixture.snapshot) == .none, "refused versions are not sent again")

        fixture.publish([F.set("web", ["10.0.0.3"])])
        let next = machine.onSnapshot(fixture.snapshot).responses
        #expect(next.map(\.names) == [["default/web:http"]])
        _ = machine.onRequest(
            request(.endpoint, names: names, version: next[0].versionInfo, nonce: next[0].nonce), snapshot: fixture.snapshot)
        #expect(machine.types[.endpoint]!.acked.keys.sorted() == ["default/web:http"])
        // Once something is ACKed, a NACK goes back to it.
        fixture.publish([F.set("web", ["10.0.0.4"])])
        let refused = machine.onSnapshot(fixture.snapshot).responses[0]
        _ = machine.onRequest(request(.endpoint, names: names, nonce: refused.nonce, nack: "no"), snapshot: fixture.snapshot)
        #expect(machine.types[.endpoint]!.sent["default/web:http"] == next[0].resources[0])
    }

    @Test func aNackedClusterIsReplacedByItsAckedVersionInFullStateResponses() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        let ackedWeb = machine.types[.cluster]!.acked["default/web:http"]!
        // The web cluster changes (now HTTP/2) and is NACKed.
        let grpc = try ServicePort(name: "http", port: 80, appProtocol: "kubernetes.io/h2c")
        fixture.publish([F.set("web", ["10.0.0.1"], port: grpc)])
        let bad = machine.onSnapshot(fixture.snapshot).responses
        #expect(bad.first?.type == .cluster)
        _ = machine.onRequest(request(.cluster, nonce: bad[0].nonce, nack: "no"), snapshot: fixture.snapshot)
        // Another cluster appears: CDS is full state and must carry web, at its ACKed version.
        fixture.publish([F.set("api", ["10.0.0.5"])])
        let next = machine.onSnapshot(fixture.snapshot).responses.first { $0.type == .cluster }!
        #expect(next.names == ["default/api:http", "default/web:http"])
        #expect(next.resources.contains(ackedWeb))
    }

    @Test func aStaleNonceIsIgnored() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        fixture.publish([F.set("web", ["10.0.0.2"])])
        let pending = machine.onSnapshot(fixture.snapshot).responses[0]
        let stale = machine.onRequest(
            request(.endpoint, names: ["default/web:http", "default/other:http"], nonce: "1"), snapshot: fixture.snapshot)
        #expect(stale == .none)
        #expect(machine.staleNonces == 1)
        #expect(machine.types[.endpoint]?.pendingNonce == pending.nonce)
        #expect(machine.types[.endpoint]?.subscribed == ["default/web:http"], "a stale request changes nothing")
    }

    @Test func requestedButAbsentResourcesAreSentWhenTheyAppear() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        let eds = machine.types[.endpoint]!
        // The client subscribes to a cluster that does not exist (yet); nothing to send.
        let names = ["default/later:http", "default/web:http"]
        #expect(
            machine.onRequest(
                request(.endpoint, names: names, version: eds.ackedVersionInfo, nonce: eds.lastNonce!), snapshot: fixture.snapshot) == .none
        )
        #expect(machine.types[.endpoint]?.subscribed == SortedNames(names))
        fixture.publish([F.set("later", ["10.0.0.8"])])
        let cdsThenEds = machine.onSnapshot(fixture.snapshot).responses
        #expect(cdsThenEds.map(\.type) == [.cluster, .endpoint])
        #expect(cdsThenEds[1].names == ["default/later:http"])
        var fresh = SotWStreamStateMachine(allowedTypes: [.endpoint])
        let first = fresh.onRequest(request(.endpoint, names: ["default/never:http"]), snapshot: fixture.snapshot).responses
        #expect(first.count == 1 && first[0].resources.isEmpty, "a first request is answered, even if empty")
        _ = fresh.onRequest(
            request(.endpoint, names: ["default/never:http"], version: first[0].versionInfo, nonce: first[0].nonce),
            snapshot: fixture.snapshot)

        fixture.publish([F.set("never", ["10.0.0.7"])])
        #expect(fresh.onSnapshot(fixture.snapshot).responses.map(\.names) == [["default/never:http"]])
    }

    @Test func legacyWildcardLastsUntilNamesAreGivenAndStarAlwaysMeansEverything() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = SotWStreamStateMachine(allowedTypes: [.cluster])
        let all = machine.onRequest(request(nil), snapshot: fixture.snapshot).responses[0]
        #expect(all.names.count == 2, "empty first request = wildcard; a CDS stream may omit the type URL")
        #expect(machine.types[.cluster]?.wildcard == true)
        _ = machine.onRequest(request(.cluster, version: all.versionInfo, nonce: all.nonce), snapshot: fixture.snapshot)
        #expect(machine.types[.cluster]?.wildcard == true, "an empty ACK keeps the wildcard")
        let narrowed = machine.onRequest(
            request(.cluster, names: ["default/web:http"], version: all.versionInfo, nonce: "nope"), snapshot: fixture.snapshot)
        #expect(narrowed == .none, "stale nonce")

        var star = SotWStreamStateMachine(allowedTypes: [.cluster])
        let both = star.onRequest(request(.cluster, names: ["*", "default/web:http"]), snapshot: fixture.snapshot).responses[0]
        #expect(both.names.count == 2)

        var named = SotWStreamStateMachine(allowedTypes: [.cluster])
        let one = named.onRequest(request(.cluster, names: ["default/web:http"]), snapshot: fixture.snapshot).responses[0]
        #expect(one.names == ["default/web:http"])

        var eds = SotWStreamStateMachine(allowedTypes: [.endpoint])
        let none = eds.onRequest(request(.endpoint), snapshot: fixture.snapshot).responses
        #expect(none.first?.resources.isEmpty == true, "no wildcard for EDS")
    }

    @Test func aChangedClusterIsFollowedByItsAssignmentAgain() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(&fixture)
        let grpc = try ServicePort(name: "http", port: 80, appProtocol: "grpc")
        fixture.publish([F.set("web", ["10.0.0.1"], port: grpc)])
        let push = machine.onSnapshot(fixture.snapshot).responses
        #expect(push.map(\.type) == [.cluster, .endpoint], "CDS first, then the unchanged assignment for warming")
        #expect(push[1].names == ["default/web:http"])
        let cluster = try Envoy_Config_Cluster_V3_Cluster(unpackingAny: try push[0].decoded().resources[0])
        #expect(cluster.typedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] != nil)
    }

    @Test func aRemovedClusterLeavesCDSAndItsAssignmentIsForgotten() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = connected(&fixture)
        fixture.publish(removing: ["api"])
        let push = machine.onSnapshot(fixture.snapshot).responses
        #expect(push.map(\.type) == [.cluster])
        #expect(push[0].names == ["default/web:http"])
    }

    @Test func aReconnectWithTheCurrentVersionsIsNotSentAnythingAgain() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        let first = connected(&fixture)
        let cdsVersion = first.types[.cluster]!.ackedVersionInfo
        let edsVersion = first.types[.endpoint]!.ackedVersionInfo
        let names = first.types[.endpoint]!.subscribed.sorted()

        // Another replica with the same content (same table built independently).
        var other = XDSFixture()
        other.publish([F.set("api", ["10.0.0.2"]), F.set("web", ["10.0.0.1"])])
        var machine = SotWStreamStateMachine(allowedTypes: ads)
        #expect(machine.onRequest(request(.cluster, version: cdsVersion), snapshot: other.snapshot) == .none)
        #expect(machine.onRequest(request(.endpoint, names: names, version: edsVersion), snapshot: other.snapshot) == .none)
        // ...but a stale version gets the current state.
        var behind = SotWStreamStateMachine(allowedTypes: ads)
        #expect(behind.onRequest(request(.cluster, version: "0123456789abcdef"), snapshot: other.snapshot).responses.count == 1)
        // And later changes still flow.
        other.publish([F.set("web", ["10.0.0.3"])])
        #expect(machine.onSnapshot(other.snapshot).responses.map(\.names) == [["default/web:http"]])
    }

    /// version_info is kept as a running sum while the client's set changes (sent, NACKed back,
    /// removed, unsubscribed); after all that it must still be the version of exactly what the client
    /// holds, which a fresh stream on another replica computes from scratch.
    @Test func theRunningVersionIsTheVersionOfWhatTheClientHolds() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"]), F.set("db", ["10.0.0.3"])])
        var machine = connected(&fixture)
        let all = ["default/api:http", "default/db:http", "default/web:http"]
        func ack(_ response: OutboundResponse, names: [String]) {
            _ = machine.onRequest(
                request(response.type, names: names, version: response.versionInfo, nonce: response.nonce), snapshot: fixture.snapshot)
        }
        // A change the client refuses: it keeps web's ACKed version.
        fixture.publish([F.set("web", ["10.0.0.9"])])
        let refused = machine.onSnapshot(fixture.snapshot).responses[0]
        _ = machine.onRequest(
            request(.endpoint, names: all, version: "x", nonce: refused.nonce, nack: "no"), snapshot: fixture.snapshot)
        // A change it takes, then db removed, then api unsubscribed.
        fixture.publish([F.set("api", ["10.0.0.4", "10.0.0.5"])])
        for response in machine.onSnapshot(fixture.snapshot).responses { ack(response, names: all) }
        fixture.publish(removing: ["db"])
        for response in machine.onSnapshot(fixture.snapshot).responses {
            ack(response, names: response.type == .endpoint ? all : [])
        }
        let unsubscribed = machine.onRequest(
            request(
                .endpoint, names: ["default/web:http"], version: machine.types[.endpoint]!.ackedVersionInfo,
                nonce: machine.types[.endpoint]!.lastNonce!), snapshot: fixture.snapshot)
        #expect(unsubscribed == .none)
        // web is still at the refused change's predecessor; a new change moves it on.
        fixture.publish([F.set("web", ["10.0.0.10"])])
        let last = machine.onSnapshot(fixture.snapshot).responses
        #expect(last.map(\.names) == [["default/web:http"]])
        ack(last[0], names: ["default/web:http"])

        var replica = SotWStreamStateMachine(allowedTypes: ads)
        #expect(
            replica.onRequest(request(.endpoint, names: ["default/web:http"], version: last[0].versionInfo), snapshot: fixture.snapshot)
                == .none, "the version sent is the version of the set the client holds")
        #expect(
            replica.onRequest(request(.cluster, version: machine.types[.cluster]!.ackedVersionInfo), snapshot: fixture.snapshot) == .none)
    }

    @Test func versionsAreContentHashesIdenticalAcrossTables() {
        var a = XDSFixture()
        var b = XDSFixture()
        a.publish([F.set("web", ["10.0.0.1", "10.0.0.2"])])
        b.publish([F.set("web", ["10.0.0.2"])])
        b.publish([F.set("web", ["10.0.0.2", "10.0.0.1"])])
        #expect(a.snapshot.resource(.endpoint, named: "default/web:http") == b.snapshot.resource(.endpoint, named: "default/web:http"))
        #expect(a.snapshot.revision == 1 && b.snapshot.revision == 2, "revisions are local; versions are not")
    }

    @Test func malformedRequestsEndTheStreamWithAClearError() {
        let snapshot = ResourceSnapshot.empty
        var noNode = SotWStreamStateMachine(allowedTypes: ads)
        #expect(noNode.onRequest(request(.cluster, node: nil), snapshot: snapshot).error?.code == .invalidArgument)
        var noType = SotWStreamStateMachine(allowedTypes: ads)
        #expect(noType.onRequest(request(nil), snapshot: snapshot).error?.message.contains("type_url is required") == true)
        var unknown = SotWStreamStateMachine(allowedTypes: ads)
        var bogus = request(.cluster)
        bogus.typeURL = "type.googleapis.com/envoy.config.listener.v3.Bogus"
        #expect(unknown.onRequest(bogus, snapshot: snapshot).error?.message.contains("is not served") == true)
        var wrongStream = SotWStreamStateMachine(allowedTypes: [.cluster])
        #expect(wrongStream.onRequest(request(.endpoint, names: ["a"]), snapshot: snapshot).error?.code == .invalidArgument)
        var absurd = SotWStreamStateMachine(allowedTypes: ads)
        #expect(
            absurd.onRequest(request(.endpoint, names: [String(repeating: "x", count: 5000)]), snapshot: snapshot).error?.code
                == .invalidArgument)
        var limits = StreamLimits()
        limits.maximumResourceNames = 3
        var many = SotWStreamStateMachine(allowedTypes: ads, limits: limits)
        #expect(many.onRequest(request(.endpoint, names: ["a", "b", "c", "d"]), snapshot: snapshot).error?.code == .resourceExhausted)
    }

    @Test func unsubscribedNamesAreSentAgainWhenResubscribed() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        _ = connected(&fixture)
        // Without a response in flight the nonce of the last response is the current one.
        var m2 = SotWStreamStateMachine(allowedTypes: [.endpoint])
        let r1 = m2.onRequest(request(.endpoint, names: ["default/web:http", "default/api:http"]), snapshot: fixture.snapshot).responses[0]
        #expect(
            m2.onRequest(
                request(.endpoint, names: ["default/web:http"], version: r1.versionInfo, nonce: r1.nonce), snapshot: fixture.snapshot)
                == .none)
        let again = m2.onRequest(
            request(.endpoint, names: ["default/web:http", "default/api:http"], version: r1.versionInfo, nonce: r1.nonce),
            snapshot: fixture.snapshot)
        #expect(again.responses.map(\.names) == [["default/api:http"]])
    }
}
