import EnvoyAPI
import LegationTestSupport
import Shared
import SwiftProtobuf
import Testing

@testable import Server

/// Priorities by locality (design §4): per client place, made once per distinct priority assignment,
/// byte for byte what SwiftProtobuf writes, and pushed only to clients whose priorities changed.
@Suite struct LocalityPrioritiesTests {
    typealias F = XDSFixture
    static let key = ClusterKey(service: F.service("web"), port: F.http)
    static let eastA = ClientLocality(region: "", zone: "us-east-1a", cluster: "east")
    static let eastB = ClientLocality(region: "", zone: "us-east-1b", cluster: "east")
    static let westA = ClientLocality(region: "", zone: "us-west-2a", cluster: "west")

    /// Three localities: east in us-east-1a and us-east-1b, west in us-west-2a; one endpoint each.
    static func table(policy: FailoverPolicy? = nil, options: ResourceOptions = ResourceOptions()) -> ResourceTable {
        var table = ResourceTable(options: options)
        let port = F.http
        func endpoint(_ address: String, _ zone: String) -> Endpoint {
            try! Endpoint(address: address, targetPorts: [8080], zone: zone, targetPod: "default/\(address)", conditions: .ready)
        }
        let east = try! EndpointSet(
            source: F.east, service: F.service("web"), ports: [port],
            endpoints: [endpoint("10.0.0.1", "us-east-1a"), endpoint("10.0.0.2", "us-east-1b")],
            failover: policy)
        let west = try! EndpointSet(
            source: F.west, service: F.service("web"), ports: [port], endpoints: [endpoint("10.1.0.1", "us-west-2a")])
        table.apply([.upsert(east)], from: F.east)
        table.apply([.upsert(west)], from: F.west)
        return table
    }

    static func assignment(_ table: inout ResourceTable) -> EncodedResource {
        table.snapshot()!.resource(.endpoint, named: key.name)!
    }

    /// Priorities by locality address, as Envoy reads them.
    static func priorities(_ resource: EncodedResource) throws -> [String: UInt32] {
        let decoded = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(serializedBytes: resource.resource)
        var result: [String: UInt32] = [:]
        for group in decoded.endpoints {
            for endpoint in group.lbEndpoints { result[endpoint.endpoint.address.socketAddress.address] = group.priority }
        }
        return result
    }

    /// A snapshot's resources in order for one locality are each name's own variant, made once and
    /// shared by every stream at that locality; localities beyond the cache's capacity are made again.
    @Test func aSnapshotLocalizesItsResourcesInOrderOncePerLocality() throws {
        var table = Self.table()
        let made = table.snapshot()
        let snapshot = try #require(made)
        for type in [ResourceType.cluster, .endpoint] {
            for client in [Self.eastA, Self.eastB, Self.westA, .unknown] {
                let inOrder = snapshot.localizedInOrder(type, for: client)
                let expected = snapshot.names(type).map { snapshot.resource(type, named: $0, for: client)! }
                #expect(inOrder.count == expected.count && zip(inOrder, expected).allSatisfy { $0 === $1 }, "\(type) at \(client)")
                let again = snapshot.localizedInOrder(type, for: client)
                #expect(inOrder.withUnsafeBufferPointer { $0.baseAddress } == again.withUnsafeBufferPointer { $0.baseAddress })
            }
        }
        #expect(snapshot.localizedInOrder(.endpoint, for: Self.eastA)[0] !== snapshot.localizedInOrder(.endpoint, for: Self.westA)[0])
        let many = (0..<(LocalizedOrder.capacity + 4)).map { ClientLocality(region: "", zone: "z-\($0)", cluster: "") }
        for client in many { _ = snapshot.localizedInOrder(.endpoint, for: client) }
        let last = try #require(many.last)
        let first = snapshot.localizedInOrder(.endpoint, for: last)
        #expect(
            first.map(\.version) == snapshot.localizedInOrder(.endpoint, for: last).map(\.version),
            "beyond the capacity: the same, made again")
    }

    @Test func theDefaultOrderIsSameZoneThenSameRegionThenTheRest() throws {
        var table = Self.table()
        let base = Self.assignment(&table)
        #expect(base.priorities?.policy == .proximity)
        #expect(try Self.priorities(base) == ["10.0.0.1": 0, "10.0.0.2": 0, "10.1.0.1": 0], "the base: every locality at priority 0")
        #expect(try Self.priorities(base.localized(for: Self.eastA)) == ["10.0.0.1": 0, "10.0.0.2": 1, "10.1.0.1": 2])
        #expect(try Self.priorities(base.localized(for: Self.eastB)) == ["10.0.0.1": 1, "10.0.0.2": 0, "10.1.0.1": 2])
        #expect(try Self.priorities(base.localized(for: Self.westA)) == ["10.0.0.1": 1, "10.0.0.2": 1, "10.1.0.1": 0], "dense: no gap at 1")
        // A region given on the node counts, and is derived from the zone when absent.
        let inRegionOnly = ClientLocality(region: "us-east-1", zone: "us-east-1c", cluster: "")
        #expect(try Self.priorities(base.localized(for: inRegionOnly)) == ["10.0.0.1": 0, "10.0.0.2": 0, "10.1.0.1": 1])
    }

    @Test func clientsThatSayNothingOrMatchNothingGetTheBaseItself() {
        var table = Self.table()
        let base = Self.assignment(&table)
        #expect(base.localized(for: .unknown) === base)
        #expect(base.localized(for: ClientLocality(region: "eu-central-1", zone: "eu-central-1a", cluster: "elsewhere")) === base)
        #expect(base.priorities?.variantCount == 0, "nothing made for them")
    }

    @Test func aServicesOrderAndFixedSourcePreferencesApply() throws {
        var table = Self.table(policy: try FailoverPolicy(parsing: "zone,cluster,region"))
        let base = Self.assignment(&table)
        let westClientInEastZone = ClientLocality(region: "", zone: "us-east-1b", cluster: "west")
        #expect(try Self.priorities(base.localized(for: westClientInEastZone)) == ["10.0.0.1": 2, "10.0.0.2": 0, "10.1.0.1": 1])

        var fixed = Self.table(policy: try FailoverPolicy(parsing: "cluster=west,cluster=east"))
        let preferring = Self.assignment(&fixed)
        for client in [Self.eastA, Self.westA, ClientLocality(region: "", zone: "z", cluster: "c"), .unknown] {
            #expect(try Self.priorities(preferring.localized(for: client)) == ["10.0.0.1": 1, "10.0.0.2": 1, "10.1.0.1": 0], "\(client)")
        }
        #expect(preferring.priorities?.variantCount == 1, "one variant for every client")
    }

    @Test func offOrOneLocalityMakesNoPriorities() throws {
        var off = Self.table(policy: .off)
        #expect(Self.assignment(&off).priorities == nil)
        var disabled = ResourceOptions()
        disabled.localityPriorities = false
        var serverOff = Self.table(policy: try FailoverPolicy(parsing: "zone"), options: disabled)
        #expect(Self.assignment(&serverOff).priorities == nil, "the server's switch wins over annotations")

        var single = ResourceTable()
        single.apply([.upsert(F.set("web", ["10.0.0.1", "10.0.0.2"]))], from: F.east)
        #expect(Self.assignment(&single).priorities == nil)
    }

    @Test func aVariantIsMadeOnceAndSharedByEveryClientWithTheSamePriorities() {
        var table = Self.table()
        let base = Self.assignment(&table)
        let first = base.localized(for: Self.eastA)
        let sameZoneOtherCluster = ClientLocality(region: "", zone: "us-east-1a", cluster: "west")
        #expect(base.localized(for: sameZoneOtherCluster) === first)
        #expect(base.localized(for: Self.eastA) === first)
        #expect(base.localized(for: Self.eastB) !== first)
        #expect(base.priorities?.variantCount == 2)
        #expect(first.version != base.version)
        #expect(first.name == base.name && first.type == .endpoint)
    }

    /// More than 16 localities (the packed key's limit): the same priorities, by the other key.
    @Test func manyLocalitiesGetTheirPrioritiesToo() throws {
        var table = ResourceTable()
        let endpoints = try (0..<20).map { zone in
            try Endpoint(
                address: "10.0.\(zone).1", targetPorts: [8080], zone: "us-east-1-z\(zone)", targetPod: "default/p\(zone)",
                conditions: .ready)
        }
        table.apply(
            [.upsert(try EndpointSet(source: F.east, service: F.service("web"), ports: [F.http], endpoints: endpoints))], from: F.east)
        let base = Self.assignment(&table)
        #expect(base.priorities?.localities.count == 20)
        let client = ClientLocality(region: "", zone: "us-east-1-z7", cluster: "")
        let variant = base.localized(for: client)
        let priorities = try Self.priorities(variant)
        #expect(priorities["10.0.7.1"] == 0)
        #expect(priorities.filter { $0.value == 1 }.count == 19)
        #expect(base.localized(for: client) === variant, "shared")
        #expect(base.localized(for: ClientLocality(region: "", zone: "us-east-1-z8", cluster: "")) !== variant)
    }

    /// Random clusters, policies and clients: every variant is SwiftProtobuf's deterministic encoding of
    /// the assignment with those priorities set.
    @Test func variantBytesAreSwiftProtobufsBytes() throws {
        var random = SplitMix64(seed: 0x10CA1)
        var deterministic = BinaryEncodingOptions()
        deterministic.useDeterministicOrdering = true
        let zones = ["", "us-east-1a", "us-east-1b", "us-west-2a", "europe-west4-c", "z"]
        let sources = [F.east, F.west, try SourceCluster("north")]
        let words = ["zone", "region", "cluster", "cluster=east", "cluster=west", "cluster=north"]
        for round in 0..<150 {
            var index = EndpointIndex()
            for source in sources {
                let count = Int.random(in: 0..<12, using: &random)
                let endpoints = try (0..<count).map { e in
                    try Endpoint(
                        address: "10.\(round % 250).\(sources.firstIndex(of: source)!).\(e + 1)", targetPorts: [8080],
                        zone: zones.randomElement(using: &random)!, targetPod: "default/pod-\(e)", conditions: .ready)
                }
                _ = index.apply(
                    [.upsert(try EndpointSet(source: source, service: F.service("web"), ports: [F.http], endpoints: endpoints))],
                    from: source)
            }
            let policy = try FailoverPolicy(
                parsing: words.shuffled(using: &random).prefix(Int.random(in: 1...4, using: &random)).joined(separator: ","))
            let builder = ResourceBuilder()
            let members = index.members(of: Self.key)
            let parts = builder.loadAssignmentParts(Self.key, members: members)
            let priorities = LocalityPriorities(policy: policy, localities: parts.localities, headEnd: parts.headEnd)
            let client = ClientLocality(
                region: Bool.random(using: &random) ? "us-east-1" : "", zone: zones.randomElement(using: &random)!,
                cluster: ["", "east", "west", "north"].randomElement(using: &random)!)
            let ranks = priorities.priorities(for: client)
            var expected = builder.loadAssignment(Self.key, members: members)
            #expect(expected.endpoints.count == ranks.count)
            for (offset, rank) in ranks.enumerated() { expected.endpoints[offset].priority = UInt32(rank) }
            let oracle: [UInt8] = try expected.serializedBytes(options: deterministic)
            #expect(priorities.bytes(base: parts.bytes, priorities: ranks) == oracle, "round \(round): \(policy) for \(client)")
            #expect(Set(ranks).count == Int(ranks.max().map { $0 + 1 } ?? 0), "dense priorities: \(ranks)")
        }
    }

    // MARK: Through the stream machines

    func localized(_ type: ResourceType, names: [String] = [], version: String = "", nonce: String = "", zone: String)
        -> Envoy_Service_Discovery_V3_DiscoveryRequest
    {
        var message = request(type, names: names, version: version, nonce: nonce)
        message.node.locality.zone = zone
        message.node.locality.subZone = "east"
        return message
    }

    @Test func aStateOfTheWorldClientGetsItsPlacesPrioritiesAndOnlyItsChanges() throws {
        var table = Self.table()
        let first = table.snapshot()!
        var local = SotWStreamStateMachine(allowedTypes: [.endpoint])
        var nowhere = SotWStreamStateMachine(allowedTypes: [.endpoint])
        let name = Self.key.name
        let sent = local.onRequest(localized(.endpoint, names: [name], zone: "us-east-1a"), snapshot: first).responses
        #expect(local.locality == Self.eastA)
        #expect(try Self.priorities(try #require(sent.first?.resources.first)) == ["10.0.0.1": 0, "10.0.0.2": 1, "10.1.0.1": 2])
        _ = local.onRequest(
            localized(.endpoint, names: [name], version: sent[0].versionInfo, nonce: sent[0].nonce, zone: "us-east-1a"), snapshot: first)
        let plain = nowhere.onRequest(request(.endpoint, names: [name]), snapshot: first).responses
        #expect(plain.first?.resources.first === first.resource(.endpoint, named: name))
        _ = nowhere.onRequest(request(.endpoint, names: [name], version: plain[0].versionInfo, nonce: plain[0].nonce), snapshot: first)

        // The service's order changes to region only: the local client's priorities change (both east
        // zones now first), the client that said nothing keeps the same bytes and is sent nothing.
        let west = try EndpointSet(
            source: F.west, service: F.service("web"), ports: [F.http],
            endpoints: table.index.members(of: Self.key).filter { $0.source == F.west }.map(\.endpoint),
            failover: try FailoverPolicy(parsing: "region"))
        table.apply([.upsert(west)], from: F.west)
        let next = table.snapshot()
        let second = try #require(next, "a changed policy is a change even with the same endpoints")
        let push = local.onSnapshot(second).responses
        #expect(try Self.priorities(try #require(push.first?.resources.first)) == ["10.0.0.1": 0, "10.0.0.2": 0, "10.1.0.1": 1])
        #expect(nowhere.onSnapshot(second) == .none)
    }

    @Test func aDeltaClientGetsItsVariantAndAReconnectWithItsVersionGetsNothing() throws {
        var table = Self.table()
        let snapshot = table.snapshot()!
        let name = Self.key.name
        func subscribe(initial: [String: String] = [:]) -> Envoy_Service_Discovery_V3_DeltaDiscoveryRequest {
            var message = deltaRequest(.endpoint, subscribe: [name], initial: initial)
            message.node.locality.zone = "us-west-2a"
            return message
        }
        var machine = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        let sent = try #require(machine.onRequest(subscribe(), snapshot: snapshot).responses.first)
        let resource = try #require(sent.resources.first)
        #expect(try Self.priorities(resource) == ["10.0.0.1": 1, "10.0.0.2": 1, "10.1.0.1": 0])
        #expect(resource.version != snapshot.resource(.endpoint, named: name)?.version)

        var reconnected = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        #expect(
            reconnected.onRequest(subscribe(initial: [name: resource.version]), snapshot: snapshot) == .none, "it holds its variant already"
        )
        var elsewhere = DeltaStreamStateMachine(allowedTypes: [.endpoint])
        var moved = subscribe(initial: [name: resource.version])
        moved.node.locality.zone = "us-east-1a"
        #expect(
            elsewhere.onRequest(moved, snapshot: snapshot).responses.first?.resources.first?.version != resource.version,
            "another place, another variant")
    }
}

/// What operators see of priorities: a placed client's assignments in sync (its variant, not the base),
/// and each assignment's order and variants.
@Suite(.timeLimit(.minutes(1)))
struct LocalityDebugViewTests {
    typealias F = XDSFixture

    @Test func aPlacedClientIsInSyncAndTheAssignmentShowsItsVariants() async throws {
        let store = InMemoryEndpointStore()
        let east = try await TestWriter.start(store, source: F.east)
        let west = try await TestWriter.start(store, source: F.west)
        try await east.publish([F.set("web", ["10.0.0.1"], zone: "us-east-1a")])
        try await west.publish([F.set("web", ["10.1.0.1"], source: F.west, zone: "us-west-2a")])
        try await XDSServiceTests.withServer(store, options: XDSServiceTests.options(required: [F.east, F.west])) { runtime, port in
            #expect(await eventually { runtime.hub.notReadyReason == nil })
            try await withADSStream(port: port) { stream in
                var first = request(.endpoint, names: ["default/web:http"])
                first.node.locality.zone = "us-east-1a"
                stream.send(first)
                let eds = try #require(try await stream.next())
                let assignment = try Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: eds.resources[0])
                #expect(assignment.endpoints.map(\.priority) == [0, 1], "east first")
                stream.ack(eds, names: ["default/web:http"])
                #expect(
                    await eventually {
                        DebugViews.clients(runtime.hub).first?.types.first?.acks == 1
                    })
                let view = try #require(DebugViews.clients(runtime.hub).first)
                #expect(view.node?.zone == "us-east-1a")
                #expect(view.types.map(\.outOfSync) == [0], "it holds its own variant, which is current")
                let resource = try #require(DebugViews.resources(runtime.hub.snapshot).first { $0.type == "eds" })
                #expect(resource.failoverOrder == "zone,region")
                #expect(resource.variants == 1)
            }
        }
    }
}
