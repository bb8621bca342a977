import Foundation
import Shared

/// Turns a cluster's Services and EndpointSlices into one full `EndpointSet` per exported service: the
/// "aggregator" of design §2 (with the record decoder, the only way to build a set).
///
/// A value type: the Kubernetes watch feeds it objects and publishes what it returns. Rules:
/// - ports by name: each service port's target port per endpoint comes from its slice's port of the
///   same name (`""` for an unnamed port); `appProtocol` from the service port, else the slice port;
/// - an address in two slices (a pod moving between slices, or mid-update) is one endpoint: the one
///   with the best conditions (ready > serving > neither) wins, then the slice that sorts first;
/// - conditions: absent `ready` means ready, absent `serving` means the same as ready, absent
///   `terminating` means not terminating (the EndpointSlice API's rules);
/// - `"endpoints": null` is an empty slice; a service with no ready endpoints is published as empty;
///   FQDN slices are skipped; a slice without a known, exported service waits for it;
/// - a malformed endpoint is skipped and reported; the rest of its slice stands.
public struct EndpointSliceAggregator: Sendable {
    /// What happened to one service.
    public enum Change: Sendable, Equatable {
        case upsert(EndpointSet)
        case remove(ServiceKey)
    }

    /// A part of an object that was skipped, with why (to log and count).
    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        public var object: String
        public var reason: String
        public var description: String { "\(object): \(reason)" }
    }

    public let source: SourceCluster
    public let selection: ServiceSelection
    private var services: [ServiceKey: ServiceObject] = [:]
    private var slices: [ServiceKey: [String: EndpointSliceObject]] = [:]
    /// Which service each slice (`namespace/name`) is filed under.
    private var sliceOwners: [String: ServiceKey] = [:]
    private var published: [ServiceKey: EndpointSet] = [:]
    /// Each slice's endpoints as converted for its service's ports, by resource version: an event
    /// converts only the slice it changed.
    private var converted: [ServiceKey: [String: ConvertedSlice]] = [:]

    private struct ConvertedSlice: Sendable {
        var resourceVersion: String
        var servicePorts: [ServicePort]
        /// Sorted by address, each address once (the best rank, then the first).
        var endpoints: [(endpoint: Endpoint, rank: Int)]
        /// Each endpoint's `addressOrderKey`, read once here for every merge to come.
        var orderKeys: [(UInt64, UInt64)] = []
        var rejections: [Rejection]
        /// Target ports the endpoints were made with, and what each item became by the digest of its JSON
        /// bytes (slices read by `JSONReader` carry them): the next version of the slice reuses the
        /// endpoints whose bytes did not change (usually all but one).
        var targets: [UInt16] = []
        var madeByDigest: [UInt64: Endpoint] = [:]
    }

    public init(source: SourceCluster, selection: ServiceSelection = ServiceSelection()) {
        self.source = source
        self.selection = selection
    }

    /// The sets currently exported.
    public var sets: [ServiceKey: EndpointSet] { published }

    // MARK: Events

    /// A Service was added or modified.
    public mutating func upsert(service: ServiceObject) -> (changes: [Change], rejections: [Rejection]) {
        guard let key = key(namespace: service.metadata.namespace, name: service.metadata.name) else {
            return ([], [Rejection(object: "service \(service.metadata.name.prefix(80))", reason: "namespace or name is not a DNS label")])
        }
        services[key] = service
        return rebuild(key)
    }

    /// A Service was deleted.
    public mutating func delete(service: ServiceObject) -> [Change] {
        guard let key = key(namespace: service.metadata.namespace, name: service.metadata.name) else { return [] }
        services[key] = nil
        return rebuild(key).changes
    }

    /// An EndpointSlice was added or modified.
    public mutating func upsert(slice: EndpointSliceObject) -> (changes: [Change], rejections: [Rejection]) {
        guard let serviceName = slice.serviceName,
            let key = key(namespace: slice.metadata.namespace, name: serviceName)
        else {
            return ([], [])  // not a service's slice (or a malformed label): nothing to export
        }
        // A slice may move to another service only by being recreated; drop any old placement anyway
        // (and rebuild the service it left).
        let owner = Self.owner(key, slice)
        var left: [Change] = []
        if let previous = sliceOwners.updateValue(key, forKey: owner), previous != key {
            slices[previous]?[slice.metadata.name] = nil
            if slices[previous]?.isEmpty == true { slices[previous] = nil }
            left = rebuild(previous).changes
        }
        slices[key, default: [:]][slice.metadata.name] = slice
        let result = rebuild(key)
        return (left + result.changes, result.rejections)
    }

    /// An EndpointSlice was deleted.
    public mutating func delete(slice: EndpointSliceObject) -> [Change] {
        guard let serviceName = slice.serviceName, let key = key(namespace: slice.metadata.namespace, name: serviceName) else { return [] }
        sliceOwners[Self.owner(key, slice)] = nil
        slices[key]?[slice.metadata.name] = nil
        if slices[key]?.isEmpty == true { slices[key] = nil }
        return rebuild(key).changes
    }

    /// Replaces everything (an initial list). - Returns: the complete set of exported services, for
    /// `EndpointPublisher.replaceAll`.
    public mutating func replaceAll(services: [ServiceObject], slices: [EndpointSliceObject]) -> (sets: [EndpointSet], rejections: [Rejection]) {
        var rejections = replace(services: services, rebuilding: false)
        rejections += replace(slices: slices)
        return (published.values.sorted { $0.service < $1.service }, rejections)
    }

    /// Replaces every Service (a relist of services after 410 Gone); rebuilds every set.
    @discardableResult
    public mutating func replace(services: [ServiceObject], rebuilding: Bool = true) -> [Rejection] {
        self.services = [:]
        var rejections: [Rejection] = []
        for service in services {
            if let key = key(namespace: service.metadata.namespace, name: service.metadata.name) {
                self.services[key] = service
            } else {
                rejections.append(Rejection(object: "service \(service.metadata.name.prefix(80))", reason: "namespace or name is not a DNS label"))
            }
        }
        if rebuilding { rejections += rebuildAll() }
        return rejections
    }

    /// Replaces every EndpointSlice (a relist of slices after 410 Gone); rebuilds every set.
    @discardableResult
    public mutating func replace(slices: [EndpointSliceObject]) -> [Rejection] {
        self.slices = [:]
        sliceOwners = [:]
        for slice in slices {
            guard let name = slice.serviceName, let key = key(namespace: slice.metadata.namespace, name: name) else { continue }
            if let previous = sliceOwners.updateValue(key, forKey: Self.owner(key, slice)), previous != key {
                self.slices[previous]?[slice.metadata.name] = nil
            }
            self.slices[key, default: [:]][slice.metadata.name] = slice
        }
        return rebuildAll()
    }

    /// Rebuilds every service (an initial list or a relist). With many services, their sets are built
    /// on every core from a snapshot of this value (building is pure), then applied in key order here.
    private mutating func rebuildAll() -> [Rejection] {
        let keys = Set(services.keys).union(published.keys).sorted()
        let workers = Swift.min(ProcessInfo.processInfo.activeProcessorCount, keys.count / 16)
        var prebuilt: [Built?] = []
        if workers > 1 {
            let snapshot = self
            nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Built?>.allocate(capacity: keys.count)
            results.initialize(repeating: nil)
            defer {
                results.deinitialize()
                results.deallocate()
            }
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for index in stride(from: worker, to: keys.count, by: workers) {
                    guard let service = snapshot.services[keys[index]], snapshot.selection.exports(service) else { continue }
                    results[index] = snapshot.build(keys[index], service: service)
                }
            }
            prebuilt = Array(results)
        }
        var rejections: [Rejection] = []
        for (index, key) in keys.enumerated() { rejections += rebuild(key, prebuilt: prebuilt.isEmpty ? nil : prebuilt[index]).rejections }
        return rejections
    }

    // MARK: Building

    /// A slice's key in `sliceOwners`: slice names are unique per namespace only.
    private static func owner(_ key: ServiceKey, _ slice: EndpointSliceObject) -> String {
        "\(key.namespace)/\(slice.metadata.name)"
    }

    /// Address order from `Endpoint.addressOrderKey`s at hand; the endpoints are read (and their text
    /// compared) only on a tie.
    private static func precedes(
        _ a: (UInt64, UInt64), _ first: @autoclosure () -> Endpoint, _ b: (UInt64, UInt64), _ second: @autoclosure () -> Endpoint
    ) -> Bool {
        a != b ? a < b : first().addressPrecedes(second())
    }

    private func key(namespace: String?, name: String) -> ServiceKey? {
        try? ServiceKey(namespace: namespace ?? "default", name: name)
    }

    /// Recomputes one service's set (or applies one built already); reports a change only when the
    /// content differs.
    private mutating func rebuild(_ key: ServiceKey, prebuilt: Built? = nil) -> (changes: [Change], rejections: [Rejection]) {
        guard let service = services[key], selection.exports(service) else {
            converted[key] = nil
            return published.removeValue(forKey: key) == nil ? ([], []) : ([.remove(key)], [])
        }
        let built = prebuilt ?? build(key, service: service)
        converted[key] = built.conversions.isEmpty ? nil : built.conversions
        var rejections = built.rejections
        switch built.set {
        case .failure(let error):
            rejections.append(Rejection(object: "service \(key)", reason: error.description))
            return ([], rejections)  // the last published set stands
        case .success(let set):
            guard published[key] != set else { return ([], rejections) }
            published[key] = set
            return ([.upsert(set)], rejections)
        }
    }

    /// One service's set as built from the current objects, without changing anything.
    private struct Built: Sendable {
        var set: Result<EndpointSet, ModelError>
        /// The slices' conversions to keep for the next build (none when the service's ports are bad).
        var conversions: [String: ConvertedSlice]
        var rejections: [Rejection]
    }

    private func build(_ key: ServiceKey, service: ServiceObject) -> Built {
        let sortedSlices = (slices[key] ?? [:]).sorted(by: { $0.key < $1.key })
        var rejections: [Rejection] = []
        var ports: [ServicePort] = []
        for port in service.spec?.ports ?? [] {
            guard let number = UInt16(exactly: port.port), number > 0 else {
                return Built(set: .failure(ModelError(.invalidPort, "port \(port.name ?? "") has number \(port.port)")), conversions: [:], rejections: rejections)
            }
            let transport = ServicePort.TransportProtocol(rawValue: port.protocol ?? "TCP") ?? .tcp
            let appProtocol = port.appProtocol ?? Self.sliceAppProtocol(sortedSlices, portName: port.name ?? "") ?? ""
            do {
                ports.append(try ServicePort(name: port.name ?? "", port: number, transportProtocol: transport, appProtocol: appProtocol))
            } catch {
                return Built(set: .failure(error), conversions: [:], rejections: rejections)
            }
        }

        // Each slice's endpoints are kept sorted by address (sorted once, when the slice changes); the
        // service's set is their merge, so an event costs a linear pass, not a sort of every endpoint.
        var cache: [String: ConvertedSlice] = [:]
        var lists: [ConvertedSlice] = []
        for (sliceName, slice) in sortedSlices {
            guard slice.addressType == "IPv4" || slice.addressType == "IPv6" else { continue }
            let version = slice.metadata.resourceVersion ?? ""
            let conversion: ConvertedSlice
            if !version.isEmpty, let cached = converted[key]?[sliceName], cached.resourceVersion == version, cached.servicePorts == ports {
                conversion = cached
            } else {
                conversion = convert(slice, named: sliceName, of: key, ports: ports, previous: converted[key]?[sliceName])
                rejections += conversion.rejections  // reported when the slice changes, not on every rebuild
            }
            if !version.isEmpty { cache[sliceName] = conversion }
            lists.append(conversion)
        }
        let set = Result { () throws(ModelError) in try EndpointSet(source: source, service: key, ports: ports, sortedEndpoints: Self.merge(lists)) }
        return Built(set: set, conversions: cache, rejections: rejections)
    }

    /// Merges lists sorted by address into one, an address in several lists kept once: the best rank,
    /// then the earliest list. A few lists (a service's usual handful of slices) are merged in one pass
    /// comparing their heads; many are halved recursively, O(n log k).
    private static func merge(_ slices: [ConvertedSlice]) -> [Endpoint] {
        if slices.count == 1 { return slices[0].endpoints.map { $0.endpoint } }
        guard slices.count <= 8 else { return mergeHalving(slices.map(\.endpoints)[...]).map { $0.endpoint } }
        // The heads are compared by their order keys; the text only on a tie.
        let lists = slices.map(\.endpoints), keys = slices.map(\.orderKeys)
        var heads = [Int](repeating: 0, count: lists.count)
        var result: [Endpoint] = []
        result.reserveCapacity(lists.reduce(0) { $0 + $1.count })
        while true {
            var lowest = -1
            for list in lists.indices where heads[list] < lists[list].count {
                guard lowest >= 0 else {
                    lowest = list
                    continue
                }
                if Self.precedes(keys[list][heads[list]], lists[list][heads[list]].endpoint, keys[lowest][heads[lowest]], lists[lowest][heads[lowest]].endpoint) {
                    lowest = list
                }
            }
            guard lowest >= 0 else { break }
            // Which head is taken is decided by position; the endpoint is copied once, into the result
            // (each copy of an endpoint is a retain on its storage, most of this loop's cost).
            let key = keys[lowest][heads[lowest]]
            var chosen = (list: lowest, index: heads[lowest])
            heads[lowest] += 1
            for list in (lowest + 1)..<lists.count where heads[list] < lists[list].count && keys[list][heads[list]] == key {
                let candidate = (list: list, index: heads[list])
                guard lists[list][candidate.index].endpoint.hasAddress(of: lists[chosen.list][chosen.index].endpoint) else { continue }
                if lists[list][candidate.index].rank > lists[chosen.list][chosen.index].rank { chosen = candidate }
                heads[list] += 1
            }
            result.append(lists[chosen.list][chosen.index].endpoint)
        }
        return result
    }

    private static func mergeHalving(_ lists: ArraySlice<[(endpoint: Endpoint, rank: Int)]>) -> [(endpoint: Endpoint, rank: Int)] {
        switch lists.count {
        case 0: return []
        case 1: return lists.first!
        default:
            let middle = lists.startIndex + lists.count / 2
            let left = mergeHalving(lists[..<middle]), right = mergeHalving(lists[middle...])
            var result: [(endpoint: Endpoint, rank: Int)] = []
            result.reserveCapacity(left.count + right.count)
            var i = 0, j = 0
            while i < left.count, j < right.count {
                let a = left[i], b = right[j]
                if a.endpoint.addressPrecedes(b.endpoint) {
                    result.append(a)
                    i += 1
                } else if b.endpoint.addressPrecedes(a.endpoint) {
                    result.append(b)
                    j += 1
                } else {
                    result.append(a.rank >= b.rank ? a : b)
                    i += 1
                    j += 1
                }
            }
            while i < left.count { result.append(left[i]); i += 1 }
            while j < right.count { result.append(right[j]); j += 1 }
            return result
        }
    }

    /// One slice's endpoints, with target ports aligned to the service's ports.
    private func convert(
        _ slice: EndpointSliceObject, named sliceName: String, of key: ServiceKey, ports: [ServicePort], previous: ConvertedSlice?
    ) -> ConvertedSlice {
        var result = ConvertedSlice(resourceVersion: slice.metadata.resourceVersion ?? "", servicePorts: ports, endpoints: [], rejections: [])
        var targetsByName: [String: UInt16] = [:]
        for port in slice.ports ?? [] {
            if let number = port.port.flatMap({ UInt16(exactly: $0) }), number > 0 { targetsByName[port.name ?? ""] = number }
        }
        let targets = ports.map { targetsByName[$0.name] ?? 0 }
        let items = slice.endpoints ?? []
        let digests = slice.endpointDigests.values.count == items.count ? slice.endpointDigests.values : nil
        let reusable = previous?.targets == targets ? previous : nil
        result.targets = targets
        result.endpoints.reserveCapacity(items.count)
        if digests != nil { result.madeByDigest.reserveCapacity(items.count) }
        for (index, item) in items.enumerated() {
            if let reusable, let digests, let endpoint = reusable.madeByDigest[digests[index]] {
                result.madeByDigest[digests[index]] = endpoint
                let conditions = endpoint.conditions
                result.endpoints.append((endpoint, conditions.ready ? 2 : (conditions.serving ? 1 : 0)))
                continue
            }
            guard let address = item.addresses.first else {
                result.rejections.append(Rejection(object: "slice \(key.namespace)/\(sliceName) endpoint \(index)", reason: "no address"))
                continue
            }
            let ready = item.conditions?.ready ?? true
            let conditions = Endpoint.Conditions(
                ready: ready, serving: item.conditions?.serving ?? ready, terminating: item.conditions?.terminating ?? false)
            let pod = item.targetRef.flatMap { reference -> String? in
                guard reference.kind == "Pod", let name = reference.name else { return nil }
                return "\(reference.namespace ?? key.namespace)/\(name)"
            } ?? ""
            let zone = item.zone ?? item.deprecatedTopology?["topology.kubernetes.io/zone"] ?? ""
            do {
                let endpoint = try Endpoint(
                    address: address, targetPorts: targets, zone: zone, node: item.nodeName ?? "",
                    hostname: item.hostname ?? "", targetPod: pod, conditions: conditions)
                if let digests { result.madeByDigest[digests[index]] = endpoint }
                result.endpoints.append((endpoint, conditions.ready ? 2 : (conditions.serving ? 1 : 0)))
            } catch {
                result.rejections.append(Rejection(object: "slice \(key.namespace)/\(sliceName) endpoint \(index)", reason: error.description))
            }
        }
        // Sorted by address (stable: on equal addresses the first comes first), then one per address.
        let keys = result.endpoints.map { $0.endpoint.addressOrderKey }
        let sorted = result.endpoints.indices.sorted { a, b in
            if keys[a] == keys[b], result.endpoints[a].endpoint.hasAddress(of: result.endpoints[b].endpoint) { return a < b }
            return Self.precedes(keys[a], result.endpoints[a].endpoint, keys[b], result.endpoints[b].endpoint)
        }.map { result.endpoints[$0] }
        result.endpoints.removeAll(keepingCapacity: true)
        result.orderKeys.reserveCapacity(sorted.count)
        for candidate in sorted {
            if let last = result.endpoints.last, last.endpoint.hasAddress(of: candidate.endpoint) {
                if candidate.rank > last.rank { result.endpoints[result.endpoints.count - 1] = candidate }
                continue
            }
            result.endpoints.append(candidate)
            result.orderKeys.append(candidate.endpoint.addressOrderKey)
        }
        return result
    }

    private static func sliceAppProtocol(_ sortedSlices: [(key: String, value: EndpointSliceObject)], portName: String) -> String? {
        for (_, slice) in sortedSlices {
            if let value = slice.ports?.first(where: { ($0.name ?? "") == portName })?.appProtocol { return value }
        }
        return nil
    }
}
