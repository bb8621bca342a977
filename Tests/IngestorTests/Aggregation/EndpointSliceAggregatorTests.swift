import Foundation
import LegationTestSupport
import Shared
import Testing

@testable import Ingestor

/// The aggregator on the real API JSON of shared/fixtures/kube.
@Suite struct EndpointSliceAggregatorTests {
    let source = try! SourceCluster("kind")

    func upsert(_ aggregator: inout EndpointSliceAggregator, slice name: String) throws -> [EndpointChange] {
        let result = aggregator.upsert(slice: try KubeFixtures.decode(EndpointSliceObject.self, name))
        #expect(result.rejections.isEmpty)
        return result.changes
    }

    /// A real pod termination (cilium's graceful-termination test, three states of one slice).
    @Test func aTerminatingPodDrainsAndAnEmptySliceLeavesAnEmptyService() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        let service = try KubeFixtures.decode(ServiceObject.self, "service-graceful-term.json")
        #expect(aggregator.upsert(service: service).changes.count == 1, "a service without slices is published, empty")

        guard case .upsert(let ready) = try upsert(&aggregator, slice: "endpointslice-graceful-1-ready.json").first else {
            Issue.record("no upsert")
            return
        }
        #expect(ready.service.description == "test/graceful-term-svc")
        #expect(ready.ports.map(\.port) == [8081])
        #expect(ready.endpoints.map(\.address) == ["10.244.0.112"])
        #expect(ready.endpoints[0].conditions == .ready)
        #expect(ready.endpoints[0].targetPorts == [8081])
        #expect(ready.endpoints[0].targetPod == "test/graceful-term-server")
        #expect(ready.endpoints[0].node == "graceful-term-control-plane")

        guard case .upsert(let draining) = try upsert(&aggregator, slice: "endpointslice-graceful-2-terminating.json").first else {
            Issue.record("no upsert")
            return
        }
        #expect(draining.endpoints[0].conditions == .init(ready: false, serving: true, terminating: true))

        guard case .upsert(let empty) = try upsert(&aggregator, slice: "endpointslice-graceful-3-empty.json").first else {
            Issue.record("no upsert")
            return
        }
        #expect(empty.endpoints.isEmpty, "\"endpoints\": null is an empty slice; the service stays, empty")
        #expect(try upsert(&aggregator, slice: "endpointslice-graceful-3-empty.json").isEmpty, "no change, nothing published")
    }

    @Test func dualStackSlicesMergeIntoOneSetWithPortsByName() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        _ = aggregator.upsert(service: try KubeFixtures.decode(ServiceObject.self, "service-dualstack-nodeport.json"))
        _ = try upsert(&aggregator, slice: "endpointslice-dualstack-ipv4.json")
        let changes = try upsert(&aggregator, slice: "endpointslice-dualstack-ipv6.json")
        guard case .upsert(let set) = changes.first else {
            Issue.record("no upsert")
            return
        }
        #expect(set.ports.map(\.name) == ["http", "tftp"])
        #expect(set.ports.map(\.transportProtocol) == [.tcp, .udp])
        #expect(set.endpoints.map(\.address) == ["10.244.1.69", "10.244.2.62", "fd00:10:244:1::3c6f", "fd00:10:244:2::72d4"])
        #expect(set.endpoints.allSatisfy { $0.targetPorts == [80, 69] })
        #expect(set.endpoints.filter(\.isIPv6).count == 2)
    }

    @Test func listsAreReplacedWholeAndTheAPIServerSliceMapsItsTargetPort() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        let services = try KubeFixtures.decode(KubeList<ServiceObject>.self, "servicelist-dualstack-assembled.json").items
        let slices = try KubeFixtures.decode(KubeList<EndpointSliceObject>.self, "endpointslicelist-dualstack-assembled.json").items
        let (sets, rejections) = aggregator.replaceAll(services: services, slices: slices)
        #expect(rejections.isEmpty)
        #expect(sets.map(\.service.description) == ["default/echo-dualstack", "default/kubernetes"])
        let apiserver = sets[1]
        #expect(apiserver.ports.map(\.port) == [443])
        #expect(apiserver.endpoints.map(\.targetPorts) == [[6443]])
        #expect(apiserver.endpoints[0].targetPod == "", "no targetRef")
        #expect(sets[0].endpoints.count == 4)
    }

    @Test func zonesComeFromTheSlice() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        let service = try ServiceObject.json(namespace: "default", name: "example", ports: [("http", 80)])
        _ = aggregator.upsert(service: service)
        var slice = try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-docs-zone.json")
        slice.metadata.namespace = "default"
        guard case .upsert(let set) = aggregator.upsert(slice: slice).changes.first else {
            Issue.record("no upsert")
            return
        }
        #expect(set.endpoints[0].zone == "us-west2-a")
        #expect(set.endpoints[0].node == "node-1")
    }

    @Test func anAddressInTwoSlicesIsOneEndpointWithTheBestConditions() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        _ = aggregator.upsert(service: try KubeFixtures.decode(ServiceObject.self, "service-graceful-term.json"))
        var old = try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-graceful-2-terminating.json")
        old.metadata.name = "a-old"
        var new = try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-graceful-1-ready.json")
        new.metadata.name = "b-new"
        _ = aggregator.upsert(slice: old)
        let changes = aggregator.upsert(slice: new).changes
        guard case .upsert(let set) = changes.first else {
            Issue.record("no upsert")
            return
        }
        #expect(set.endpoints.count == 1)
        #expect(set.endpoints[0].conditions.ready)
        #expect(aggregator.delete(slice: new).count == 1, "back to the terminating copy")
        #expect(aggregator.sets.values.first?.endpoints[0].conditions.terminating == true)
    }

    @Test func selectionByNamespaceLabelAnnotationAndType() throws {
        let selection = ServiceSelection(
            excludeNamespaces: ["kube-system"], labelSelector: try LabelSelector(parsing: "tier in (web,api),!legacy"),
            requiredAnnotation: ServiceSelection.exportAnnotation)
        var aggregator = EndpointSliceAggregator(source: source, selection: selection)
        var exported = try ServiceObject.json(namespace: "shop", name: "cart", ports: [("http", 80)])
        exported.metadata.labels = ["tier": "web"]
        exported.metadata.annotations = [ServiceSelection.exportAnnotation: "true"]
        #expect(aggregator.upsert(service: exported).changes.count == 1)

        var notAnnotated = exported
        notAnnotated.metadata.name = "quiet"
        notAnnotated.metadata.annotations = nil
        var legacy = exported
        legacy.metadata.name = "old"
        legacy.metadata.labels = ["tier": "web", "legacy": "yes"]
        var system = exported
        system.metadata.namespace = "kube-system"
        var external = exported
        external.metadata.name = "external"
        external.spec?.type = "ExternalName"
        for service in [notAnnotated, legacy, system, external] {
            #expect(aggregator.upsert(service: service).changes.isEmpty, "\(service.metadata.name)")
        }
        exported.metadata.annotations = [:]  // opting out removes it
        #expect(aggregator.upsert(service: exported).changes == [.remove(try ServiceKey(namespace: "shop", name: "cart"))])
    }

    @Test func headlessServicesAreExportedLikeAnyOther() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        var service = try ServiceObject.json(namespace: "default", name: "echo-dualstack", ports: [("http", 80), ("tftp", 69)])
        service.spec?.clusterIP = "None"
        _ = aggregator.upsert(service: service)
        guard
            case .upsert(let set) = aggregator.upsert(
                slice: try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-dualstack-ipv4.json")
            ).changes.first
        else {
            Issue.record("headless service not exported")
            return
        }
        #expect(set.endpoints.count == 2)
    }

    @Test func aMalformedEndpointIsSkippedAndReported() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        _ = aggregator.upsert(service: try KubeFixtures.decode(ServiceObject.self, "service-dualstack-nodeport.json"))
        var slice = try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-dualstack-ipv4.json")
        slice.endpoints?[0].addresses = ["not-an-ip"]
        let result = aggregator.upsert(slice: slice)
        #expect(result.rejections.count == 1)
        #expect(result.rejections[0].description.contains("not an IP address"))
        guard case .upsert(let set) = result.changes.first else {
            Issue.record("no upsert")
            return
        }
        #expect(set.endpoints.map(\.address) == ["10.244.1.69"])
    }

    /// Slice names are unique per namespace only: a slice of the same name in another namespace is
    /// another slice. A slice relabelled to another service leaves its old service (rebuilt without it).
    @Test func sameNamedSlicesInTwoNamespacesAreTwoSlicesAndAMovedSliceLeavesItsService() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        let fixture = try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-dualstack-ipv4.json")
        for namespace in ["a", "b"] {
            _ = aggregator.upsert(
                service: try ServiceObject.json(namespace: namespace, name: "echo-dualstack", ports: [("http", 80), ("tftp", 69)]))
            _ = aggregator.upsert(service: try ServiceObject.json(namespace: namespace, name: "other", ports: [("http", 80), ("tftp", 69)]))
            var slice = fixture
            slice.metadata.namespace = namespace
            _ = aggregator.upsert(slice: slice)
        }
        let keys = try ["a", "b"].map { try ServiceKey(namespace: $0, name: "echo-dualstack") }
        #expect(keys.allSatisfy { aggregator.sets[$0]?.endpoints.count == 2 }, "the slice in b did not displace the one in a")

        var moved = fixture
        moved.metadata.namespace = "a"
        moved.metadata.labels?["kubernetes.io/service-name"] = "other"
        let changes = aggregator.upsert(slice: moved).changes
        #expect(changes.count == 2)
        #expect(aggregator.sets[keys[0]]?.endpoints.isEmpty == true, "a/echo-dualstack lost the slice")
        #expect(aggregator.sets[try ServiceKey(namespace: "a", name: "other")]?.endpoints.count == 2)
        #expect(aggregator.sets[keys[1]]?.endpoints.count == 2)
    }

    /// A list of many services is built on every core; it must come to what the same objects give one
    /// event at a time (a service with a bad port included: it is rejected either way).
    @Test func aLargeListBuildsAsTheSameObjectsOneByOne() throws {
        let fixture = try KubeFixtures.decode(EndpointSliceObject.self, "endpointslice-dualstack-ipv4.json")
        var services: [ServiceObject] = []
        var slices: [EndpointSliceObject] = []
        for index in 0..<80 {
            services.append(
                try ServiceObject.json(
                    namespace: "n\(index % 7)", name: "s\(index)", ports: [("http", index == 33 ? 70_000 : 80), ("tftp", 69)]))
            for part in 0..<(index % 3) {
                var slice = fixture
                slice.metadata.namespace = "n\(index % 7)"
                slice.metadata.name = "s\(index)-\(part)"
                slice.metadata.labels?["kubernetes.io/service-name"] = "s\(index)"
                slice.endpoints?[0].addresses = ["10.\(index).\(part).1"]
                slices.append(slice)
            }
        }
        var whole = EndpointSliceAggregator(source: source)
        let listed = whole.replaceAll(services: services, slices: slices)
        var oneByOne = EndpointSliceAggregator(source: source)
        var rejections: [EndpointSliceAggregator.Rejection] = []
        for service in services { rejections += oneByOne.upsert(service: service).rejections }
        for slice in slices { rejections += oneByOne.upsert(slice: slice).rejections }
        #expect(listed.sets.count == 79)
        #expect(
            listed.sets.reduce(0) { $0 + $1.endpoints.count } == 27 * 2 + 26 * 3, "one slice: 2 endpoints; two: 3 (one address in both)")
        #expect(whole.sets == oneByOne.sets)
        #expect(listed.rejections.contains { $0.object.contains("s33") })
        #expect(rejections.contains { $0.object.contains("s33") })
    }

    /// Random versions of a service's slices (one to twelve slices, IPv4 and IPv6 addresses sharing
    /// long prefixes, the same address in several slices with other conditions, endpoints inserted,
    /// removed, moved and changed), read through a watch memo as the ingestor reads them: each set the
    /// aggregator publishes equals the one built plainly from every endpoint (best conditions, then the
    /// first slice by name, sorted by address), its content and record bytes included.
    @Test func mergedSetsEqualSetsBuiltPlainly() throws {
        var generator = SystemRandomNumberGenerator()
        let addresses =
            (0..<40).map { "10.0.\($0 % 3).\($0)" } + (0..<40).map { "fd00:10:244:1::\(String(($0 * 7919) % 0xFFFF + 1, radix: 16))" }
        let service = try ServiceObject(
            json: Array(
                #"{"metadata":{"name":"web","namespace":"shop"},"spec":{"ports":[{"name":"http","port":80},{"name":"grpc","port":81}]}}"#
                    .utf8))
        for round in 0..<30 {
            var aggregator = EndpointSliceAggregator(source: source)
            _ = aggregator.upsert(service: service)
            let memo = ReadMemo()
            let sliceCount = Int.random(in: 1...12, using: &generator)
            /// Per slice: its endpoints as (address, ready, serving).
            var slices = (0..<sliceCount).map { _ in
                (0..<Int.random(in: 0...12, using: &generator)).map { _ in
                    (addresses.randomElement(using: &generator)!, Bool.random(using: &generator), Bool.random(using: &generator))
                }
            }
            for version in 0..<12 {
                let changed = Int.random(in: 0..<sliceCount, using: &generator)
                if version > 0 {
                    var endpoints = slices[changed]
                    switch Int.random(in: 0..<4, using: &generator) {
                    case 0: endpoints.append((addresses.randomElement(using: &generator)!, true, true))
                    case 1 where !endpoints.isEmpty: endpoints.remove(at: Int.random(in: 0..<endpoints.count, using: &generator))
                    case 2 where endpoints.count > 1: endpoints.swapAt(0, endpoints.count - 1)
                    default:
                        guard !endpoints.isEmpty else { break }
                        let index = Int.random(in: 0..<endpoints.count, using: &generator)
                        endpoints[index].1.toggle()
                    }
                    slices[changed] = endpoints
                }
                // Unique addresses within one slice (as the EndpointSlice controller writes them).
                var seen = Set<String>()
                slices[changed] = slices[changed].filter { seen.insert($0.0).inserted }
                /// Slice `index` as its watch event, through the memo as the ingestor reads it.
                func read(_ index: Int, type: String) throws -> EndpointSliceObject? {
                    let items = slices[index].map { address, ready, serving in
                        #"{"addresses":["\#(address)"],"conditions":{"ready":\#(ready),"serving":\#(serving)},"nodeName":"n1","targetRef":{"kind":"Pod","name":"p-\#(address)"}}"#
                    }.joined(separator: ",")
                    let event =
                        #"{"type":"\#(type)","object":{"metadata":{"name":"web-\#(String(UnicodeScalar(UInt8(97 + index))))","namespace":"shop","resourceVersion":"\#(round * 100 + version)","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[\#(items)],"ports":[{"name":"http","port":8080},{"name":"grpc","port":9090}]}}"#
                    switch try WatchEvent<EndpointSliceObject>(json: Array(event.utf8), memo: memo) {
                    case .added(let slice), .modified(let slice): return slice
                    default: return nil
                    }
                }
                // First every slice once, then one changed slice per version.
                for index in version == 0 ? Array(0..<sliceCount) : [changed] {
                    let slice = try #require(try read(index, type: version == 0 ? "ADDED" : "MODIFIED"))
                    _ = aggregator.upsert(slice: slice)
                }
                // Plainly: every endpoint, the best conditions per address (then the first slice by name).
                var best: [String: (rank: Int, endpoint: Endpoint)] = [:]
                for endpoints in slices {
                    for (address, ready, serving) in endpoints {
                        let rank = ready ? 2 : (serving ? 1 : 0)
                        let endpoint = try Endpoint(
                            address: address, targetPorts: [8080, 9090], node: "n1", targetPod: "shop/p-\(address)",
                            conditions: .init(ready: ready, serving: serving, terminating: false))
                        guard rank > best[endpoint.address]?.rank ?? -1 else { continue }
                        best[endpoint.address] = (rank, endpoint)
                    }
                }
                let ports = [try ServicePort(name: "http", port: 80), try ServicePort(name: "grpc", port: 81)]
                let expected = try EndpointSet(
                    source: source, service: ServiceKey(namespace: "shop", name: "web"), ports: ports,
                    endpoints: best.values.map(\.endpoint))
                let set = try #require(aggregator.sets.values.first)
                func described(_ set: EndpointSet) -> [String] {
                    set.endpoints.map { "\($0.address) \($0.conditions.ready) \($0.conditions.serving) \($0.targetPorts)" }
                }
                #expect(set.endpointCount == expected.endpoints.count, "round \(round) version \(version)")
                #expect(described(set) == described(expected), "round \(round) version \(version)")
                #expect(set == expected, "round \(round) version \(version)")
                let sameRecord =
                    set.recordBytes(epoch: 1, publishedAtUnixMilliseconds: 2)
                    == expected.recordBytes(epoch: 1, publishedAtUnixMilliseconds: 2)
                #expect(sameRecord, "round \(round) version \(version): record bytes differ")
            }
        }
    }

    @Test func labelSelectorsParseLikeKubectl() throws {
        let selector = try LabelSelector(parsing: "app=web, env in (prod, staging),tier!=cache,team,!legacy")
        #expect(selector.matches(["app": "web", "env": "prod", "team": "a"]))
        #expect(!selector.matches(["app": "web", "env": "dev", "team": "a"]))
        #expect(!selector.matches(["app": "web", "env": "prod", "team": "a", "tier": "cache"]))
        #expect(!selector.matches(["app": "web", "env": "prod", "team": "a", "legacy": ""]))
        #expect(!selector.matches(["app": "web", "env": "prod"]))
        #expect(try LabelSelector(parsing: "env notin (dev)").matches([:]))
        for bad in ["env in prod", "=x", "!"] {
            #expect(throws: ModelError.self) { try LabelSelector(parsing: bad) }
        }
    }
}

extension ServiceObject {
    /// A minimal Service, through the same JSON decoding the watch uses.
    static func json(namespace: String, name: String, ports: [(String, Int)]) throws -> ServiceObject {
        let portList = ports.map { #"{"name":"\#($0.0)","port":\#($0.1),"protocol":"TCP"}"# }.joined(separator: ",")
        let text = #"{"metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{"type":"ClusterIP","ports":[\#(portList)]}}"#
        return try JSONDecoder().decode(ServiceObject.self, from: Data(text.utf8))
    }
}

/// The `legation.io/failover` annotation: read with the Service, carried by its set, bad values
/// reported and ignored.
@Suite struct FailoverAnnotationTests {
    let source = try! SourceCluster("kind")

    func service(annotation: String?) throws -> ServiceObject {
        let annotations = annotation.map { #","annotations":{"legation.io/failover":"\#($0)"}"# } ?? ""
        let json =
            #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"default"\#(annotations)},"spec":{"ports":[{"name":"http","port":80}]}}"#
        return try JSONDecoder().decode(ServiceObject.self, from: Data(json.utf8))
    }

    func set(_ changes: [EndpointChange]) -> EndpointSet? {
        guard case .upsert(let set)? = changes.first else { return nil }
        return set
    }

    @Test func theAnnotationSetsThePolicyAndAChangeToItIsPublished() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        let first = aggregator.upsert(service: try service(annotation: "zone, cluster,region"))
        #expect(first.rejections.isEmpty)
        #expect(set(first.changes)?.failover?.order == [.zone, .cluster, .region])

        let again = aggregator.upsert(service: try service(annotation: "zone,cluster,region"))
        #expect(again.changes.isEmpty, "the same policy (in other spacing) changes nothing")

        let off = aggregator.upsert(service: try service(annotation: "off"))
        #expect(set(off.changes)?.failover == .off)

        let removed = aggregator.upsert(service: try service(annotation: nil))
        #expect(set(removed.changes)?.failover == nil, "no annotation: the server's default")
    }

    @Test func aBadAnnotationIsReportedAndIgnored() throws {
        var aggregator = EndpointSliceAggregator(source: source)
        _ = aggregator.upsert(service: try service(annotation: "zone"))
        let bad = aggregator.upsert(service: try service(annotation: "zone,nearest"))
        #expect(bad.rejections.count == 1)
        #expect(bad.rejections.first?.description.contains("legation.io/failover") == true)
        #expect(bad.rejections.first?.description.contains("\"nearest\"") == true)
        #expect(set(bad.changes)?.failover == nil, "published with the server's default instead")

        // A relist reports it too, and the set keeps no policy.
        var relisted = EndpointSliceAggregator(source: source)
        let rejections = relisted.replaceAll(services: [try service(annotation: "cluster=Not A Label")], slices: []).rejections
        #expect(rejections.count == 1)
        #expect(relisted.sets.values.first?.failover == nil)
    }
}
