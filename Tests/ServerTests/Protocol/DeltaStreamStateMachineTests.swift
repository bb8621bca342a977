import EnvoyAPI
import Shared
import Testing

@testable import Server

/// Incremental xDS, rule by rule, with no sockets.
@Suite struct DeltaStreamStateMachineTests {
    typealias F = XDSFixture
    let ads = Set(ResourceType.allCases)

    /// A stream with CDS (wildcard) and EDS for every cluster ACKed.
    func connected(_ fixture: XDSFixture) -> DeltaStreamStateMachine {
        var machine = DeltaStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(deltaRequest(.cluster), snapshot: fixture.snapshot).responses[0]
        _ = machine.onRequest(deltaRequest(.cluster, nonce: cds.nonce), snapshot: fixture.snapshot)
        let eds = machine.onRequest(deltaRequest(.endpoint, subscribe: cds.resources.map(\.name)), snapshot: fixture.snapshot).responses[0]
        _ = machine.onRequest(deltaRequest(.endpoint, nonce: eds.nonce), snapshot: fixture.snapshot)
        return machine
    }

    @Test func wildcardClustersThenSubscribedAssignmentsWithExactBytes() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = DeltaStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(deltaRequest(.cluster), snapshot: fixture.snapshot).responses
        #expect(cds.map { $0.resources.map(\.name) } == [["default/api:http", "default/web:http"]])
        let decoded = try Envoy_Service_Discovery_V3_DeltaDiscoveryResponse(serializedBytes: cds[0].encoded(controlPlane: "cp"))
        #expect(decoded.typeURL == ResourceType.cluster.typeURL)
        #expect(decoded.resources.map(\.name) == ["default/api:http", "default/web:http"])
        #expect(decoded.resources[0].version == cds[0].resources[0].version)
        #expect(decoded.controlPlane.identifier == "cp")
        let cluster = try Envoy_Config_Cluster_V3_Cluster(unpackingAny: decoded.resources[1].resource)
        #expect(cluster.name == "default/web:http")
        let eds = machine.onRequest(deltaRequest(.endpoint, subscribe: ["default/web:http"]), snapshot: fixture.snapshot).responses
        #expect(eds.map { $0.resources.map(\.name) } == [["default/web:http"]])
    }

    @Test func onlyTheChangedResourceGoesOutAndOnlyToItsSubscribers() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var both = connected(fixture)
        var apiOnly = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        let first = apiOnly.onRequest(deltaRequest(.endpoint, subscribe: ["default/api:http"]), snapshot: fixture.snapshot).responses[0]
        _ = apiOnly.onRequest(deltaRequest(.endpoint, nonce: first.nonce), snapshot: fixture.snapshot)

        fixture.publish([F.set("web", ["10.0.0.1", "10.0.0.5"])])
        let push = both.onSnapshot(fixture.snapshot).responses
        #expect(push.map(\.type) == [.endpoint])
        #expect(push[0].resources.map(\.name) == ["default/web:http"])
        #expect(push[0].removed.isEmpty)
        #expect(apiOnly.onSnapshot(fixture.snapshot) == .none, "not subscribed to web: nothing")
    }

    @Test func deletionsAndAbsentSubscriptionsAreRemovedResources() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = connected(fixture)
        fixture.publish(removing: ["api"])
        let push = machine.onSnapshot(fixture.snapshot).responses
        #expect(push.map(\.type) == [.cluster, .endpoint])
        #expect(push[0].removed == ["default/api:http"] && push[0].resources.isEmpty)
        #expect(push[1].removed == ["default/api:http"])

        var eds = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        let absent = eds.onRequest(deltaRequest(.endpoint, subscribe: ["default/nope:http"]), snapshot: fixture.snapshot).responses
        #expect(absent.map(\.removed) == [["default/nope:http"]], "a subscribed name that does not exist is reported")
        _ = eds.onRequest(deltaRequest(.endpoint, nonce: absent[0].nonce), snapshot: fixture.snapshot)
        fixture.publish([F.set("nope", ["10.0.0.9"])])
        #expect(
            eds.onSnapshot(fixture.snapshot).responses.map { $0.resources.map(\.name) } == [["default/nope:http"]], "sent when it appears")

        // Beside the wildcard too: every cluster there is, and the explicit name that is not reported.
        var cds = DeltaStreamStateMachine(allowedTypes: [.cluster])
        let both = cds.onRequest(deltaRequest(.cluster, subscribe: ["*", "default/gone:http"]), snapshot: fixture.snapshot).responses
        #expect(both.map { $0.resources.map(\.name) } == [fixture.snapshot.names(.cluster)])
        #expect(both.map(\.removed) == [["default/gone:http"]], "an explicit name beside the wildcard that does not exist is reported")
    }

    @Test func subscriptionChangesCountEvenWithAStaleNonce() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        let first = machine.onRequest(deltaRequest(.endpoint, subscribe: ["default/web:http"]), snapshot: fixture.snapshot).responses[0]
        _ = machine.onRequest(deltaRequest(.endpoint, nonce: first.nonce), snapshot: fixture.snapshot)
        fixture.publish([F.set("web", ["10.0.0.3"])])
        let pending = machine.onSnapshot(fixture.snapshot).responses[0]
        // The client subscribes to api echoing the old nonce: the subscription stands, its answer waits for the ACK.
        #expect(
            machine.onRequest(deltaRequest(.endpoint, subscribe: ["default/api:http"], nonce: first.nonce), snapshot: fixture.snapshot)
                == .none)
        #expect(machine.types[.endpoint]?.subscribed == ["default/web:http", "default/api:http"])
        let next = machine.onRequest(deltaRequest(.endpoint, nonce: pending.nonce), snapshot: fixture.snapshot).responses
        #expect(next.map { $0.resources.map(\.name) } == [["default/api:http"]])
        // Unsubscribing forgets it; a later subscription sends it again.
        _ = machine.onRequest(deltaRequest(.endpoint, unsubscribe: ["default/api:http"], nonce: next[0].nonce), snapshot: fixture.snapshot)
        let again = machine.onRequest(
            deltaRequest(.endpoint, subscribe: ["default/api:http"], nonce: next[0].nonce), snapshot: fixture.snapshot)
        #expect(again.responses.map { $0.resources.map(\.name) } == [["default/api:http"]])
    }

    /// xDS "Subscribing to Resources": a subscription for a name the client already holds is answered with
    /// the resource again. Envoy relies on it when a cluster is removed and added back: its new EDS
    /// subscription must be answered although the name (and version) never changed here.
    @Test func subscribingToANameTheClientHoldsSendsItAgain() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = connected(fixture)
        let web = "default/web:http"

        // Subscribed again while subscribed.
        let again = machine.onRequest(deltaRequest(.endpoint, subscribe: [web]), snapshot: fixture.snapshot).responses
        #expect(again.map { $0.resources.map(\.name) } == [[web]])
        #expect(again.first?.resources.first?.version == fixture.snapshot.resource(.endpoint, named: web)?.version)
        _ = machine.onRequest(deltaRequest(.endpoint, nonce: again[0].nonce), snapshot: fixture.snapshot)

        // Under the wildcard (CDS): unsubscribing a name keeps it held; subscribing it again sends it.
        _ = machine.onRequest(deltaRequest(.cluster, unsubscribe: [web]), snapshot: fixture.snapshot)
        let cluster = machine.onRequest(deltaRequest(.cluster, subscribe: [web]), snapshot: fixture.snapshot).responses
        #expect(cluster.first.map { ($0.type, $0.resources.map(\.name)) }.map { $0 == (.cluster, [web]) } == true)

        // Unsubscribed, then subscribed again in the same stream (explicit names).
        var eds = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        let first = eds.onRequest(deltaRequest(.endpoint, subscribe: [web]), snapshot: fixture.snapshot).responses[0]
        _ = eds.onRequest(deltaRequest(.endpoint, nonce: first.nonce), snapshot: fixture.snapshot)
        #expect(eds.onRequest(deltaRequest(.endpoint, unsubscribe: [web]), snapshot: fixture.snapshot) == .none)
        let back = eds.onRequest(deltaRequest(.endpoint, subscribe: [web]), snapshot: fixture.snapshot).responses
        #expect(back.map { $0.resources.map(\.name) } == [[web]])

        // A subscribed name that does not exist is reported absent again when subscribed again.
        _ = eds.onRequest(deltaRequest(.endpoint, nonce: back[0].nonce), snapshot: fixture.snapshot)
        let absent = eds.onRequest(deltaRequest(.endpoint, subscribe: ["default/nope:http"]), snapshot: fixture.snapshot).responses[0]
        _ = eds.onRequest(deltaRequest(.endpoint, nonce: absent.nonce), snapshot: fixture.snapshot)
        #expect(
            eds.onRequest(deltaRequest(.endpoint, subscribe: ["default/nope:http"]), snapshot: fixture.snapshot).responses.map(\.removed)
                == [["default/nope:http"]])

        // A reconnect that reports the current version is not sent it (the subscription comes with it).
        var reconnect = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        let held = [web: fixture.snapshot.resource(.endpoint, named: web)!.version]
        #expect(reconnect.onRequest(deltaRequest(.endpoint, subscribe: [web], initial: held), snapshot: fixture.snapshot) == .none)
    }

    @Test func aReconnectWithInitialVersionsGetsOnlyWhatDiffers() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"]), F.set("old", ["10.0.0.3"])])
        let had = connected(fixture)
        let clusters = had.types[.cluster]!.known
        let endpoints = had.types[.endpoint]!.known
        // Meanwhile: web's endpoints changed, old was deleted.
        fixture.publish([F.set("web", ["10.0.0.7"])])
        fixture.publish(removing: ["old"])
        var machine = DeltaStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(deltaRequest(.cluster, subscribe: ["*"], initial: clusters), snapshot: fixture.snapshot).responses
        #expect(cds.count == 1 && cds[0].resources.isEmpty && cds[0].removed == ["default/old:http"])
        _ = machine.onRequest(deltaRequest(.cluster, nonce: cds[0].nonce), snapshot: fixture.snapshot)
        let eds = machine.onRequest(
            deltaRequest(.endpoint, subscribe: ["default/api:http", "default/old:http", "default/web:http"], initial: endpoints),
            snapshot: fixture.snapshot
        ).responses
        #expect(eds.map { $0.resources.map(\.name) } == [["default/web:http"]], "api is unchanged: not sent")
        #expect(eds[0].removed == ["default/old:http"], "the client held old: it is removed")

        var same = DeltaStreamStateMachine(allowedTypes: ads)
        let current = fixture.snapshot.all(.cluster).mapValues(\.version)
        #expect(same.onRequest(deltaRequest(.cluster, subscribe: ["*"], initial: current), snapshot: fixture.snapshot) == .none)
    }

    @Test func aNackedVersionIsNotSentAgain() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(fixture)
        let held = machine.types[.endpoint]!.known["default/web:http"]
        fixture.publish([F.set("web", ["10.0.0.2"])])
        let bad = machine.onSnapshot(fixture.snapshot).responses[0]
        #expect(machine.onRequest(deltaRequest(.endpoint, nonce: bad.nonce, nack: "no"), snapshot: fixture.snapshot) == .none)
        #expect(machine.types[.endpoint]?.known["default/web:http"] == held, "the client keeps what it had")
        #expect(machine.types[.endpoint]?.lastNack == "no")
        #expect(machine.onSnapshot(fixture.snapshot) == .none)
        fixture.publish([F.set("web", ["10.0.0.3"])])
        #expect(machine.onSnapshot(fixture.snapshot).responses.map { $0.resources.map(\.name) } == [["default/web:http"]])
    }

    /// A NACK of a stream's first response (it held nothing): the client holds nothing, the refused
    /// versions are not sent again, and a changed one is.
    @Test func aNackedFirstResponseLeavesTheClientHoldingNothing() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = DeltaStreamStateMachine(allowedTypes: ads)
        let cds = machine.onRequest(deltaRequest(.cluster), snapshot: fixture.snapshot).responses[0]
        _ = machine.onRequest(deltaRequest(.cluster, nonce: cds.nonce), snapshot: fixture.snapshot)
        let names = cds.resources.map(\.name)
        let first = machine.onRequest(deltaRequest(.endpoint, subscribe: names), snapshot: fixture.snapshot).responses[0]
        #expect(first.resources.map(\.name).sorted() == names.sorted())
        #expect(machine.onRequest(deltaRequest(.endpoint, nonce: first.nonce, nack: "no"), snapshot: fixture.snapshot) == .none)
        #expect(machine.types[.endpoint]?.known == [:], "the client keeps what it had: nothing")
        #expect(machine.types[.endpoint]?.nacked.count == 2)
        #expect(machine.onSnapshot(fixture.snapshot) == .none, "refused versions are not sent again")
        fixture.publish([F.set("web", ["10.0.0.3"])])
        #expect(machine.onSnapshot(fixture.snapshot).responses.map { $0.resources.map(\.name) } == [["default/web:http"]])
    }

    @Test func aChangedClusterIsFollowedByItsAssignment() throws {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"])])
        var machine = connected(fixture)
        fixture.publish([F.set("web", ["10.0.0.1"], port: try ServicePort(name: "http", port: 80, appProtocol: "h2c"))])
        let push = machine.onSnapshot(fixture.snapshot).responses
        #expect(push.map(\.type) == [.cluster, .endpoint])
        #expect(push[1].resources.map(\.name) == ["default/web:http"])
    }

    @Test func unsubscribingFromTheWildcardAndBadRequests() {
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"])])
        var machine = DeltaStreamStateMachine(allowedTypes: ads)
        let all = machine.onRequest(deltaRequest(.cluster, subscribe: ["*", "default/web:http"]), snapshot: fixture.snapshot).responses[0]
        #expect(all.resources.count == 2)
        _ = machine.onRequest(deltaRequest(.cluster, unsubscribe: ["*"], nonce: all.nonce), snapshot: fixture.snapshot)
        #expect(machine.types[.cluster]?.wildcard == false)
        #expect(machine.types[.cluster]?.known.keys.sorted() == ["default/web:http"], "explicit names stay")

        var bad = DeltaStreamStateMachine(allowedTypes: ads)
        #expect(
            bad.onRequest(deltaRequest(nil), snapshot: fixture.snapshot)
                == .fail(XDSError(.invalidArgument, "type_url is required on an aggregated stream")))
        var noNode = DeltaStreamStateMachine(allowedTypes: ads)
        if case .fail(let error) = noNode.onRequest(deltaRequest(.cluster, node: nil), snapshot: fixture.snapshot) {
            #expect(error.code == .invalidArgument)
        } else {
            Issue.record("a first request without a node must fail")
        }
        var limits = StreamLimits()
        limits.maximumResourceNames = 2
        var many = DeltaStreamStateMachine(allowedTypes: ads, limits: limits)
        if case .fail(let error) = many.onRequest(deltaRequest(.endpoint, subscribe: ["a", "b", "c"]), snapshot: fixture.snapshot) {
            #expect(error.code == .resourceExhausted)
        } else {
            Issue.record("too many names must fail")
        }
    }

    /// The system_version_info kept as `known` changes equals the one computed over `known` from
    /// scratch, through random subscriptions, ACKs, NACKs, reconnect versions and snapshot changes.
    @Test func theRunningVersionEqualsTheVersionOfWhatTheClientHolds() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<30 {
            var fixture = XDSFixture()
            let services = (0..<6).map { "svc-\($0)" }
            fixture.publish(services.map { F.set($0, ["10.0.0.\(Int.random(in: 1...3, using: &generator))"]) })
            var machine = DeltaStreamStateMachine(allowedTypes: [.endpoint])
            var pending: OutboundDeltaResponse?
            func check(_ responses: [OutboundDeltaResponse]) {
                for response in responses {
                    // From scratch: the digests of every (name, version) pair the client holds, summed.
                    let known = machine.types[.endpoint]!.known
                    let sum = known.reduce(UInt64(0)) { $0 &+ EncodedResource.memberDigest(name: $1.key, version: $1.value) }
                    #expect(response.systemVersionInfo == EncodedResource.hex(sum))
                    pending = response
                }
            }
            let held = Dictionary(uniqueKeysWithValues: services.prefix(2).map { ("default/\($0):http", "stale") })
            check(
                machine.onRequest(deltaRequest(.endpoint, subscribe: ["default/svc-0:http"], initial: held), snapshot: fixture.snapshot)
                    .responses)
            for _ in 0..<25 {
                let name = "default/\(services.randomElement(using: &generator)!):http"
                switch Int.random(in: 0..<5, using: &generator) {
                case 0:
                    check(
                        machine.onRequest(
                            deltaRequest(.endpoint, subscribe: [name], nonce: pending?.nonce ?? ""), snapshot: fixture.snapshot
                        ).responses)
                case 1:
                    check(
                        machine.onRequest(
                            deltaRequest(.endpoint, unsubscribe: [name], nonce: pending?.nonce ?? ""), snapshot: fixture.snapshot
                        ).responses)
                case 2:
                    check(
                        machine.onRequest(deltaRequest(.endpoint, nonce: pending?.nonce ?? "", nack: "no"), snapshot: fixture.snapshot)
                            .responses)
                case 3: check(machine.onRequest(deltaRequest(.endpoint, nonce: pending?.nonce ?? ""), snapshot: fixture.snapshot).responses)
                default:
                    if Bool.random(using: &generator) {
                        fixture.publish([
                            F.set(String(name.dropFirst(8).dropLast(5)), ["10.0.1.\(Int.random(in: 1...3, using: &generator))"])
                        ])
                    } else {
                        fixture.publish(removing: [String(name.dropFirst(8).dropLast(5))])
                    }
                    check(machine.onSnapshot(fixture.snapshot).responses)
                }
            }
        }
    }
}
