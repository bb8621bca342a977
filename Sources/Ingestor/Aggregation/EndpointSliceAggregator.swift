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
/// - a malformed endpoint is skipped and reported; the rest of its slice stands;
/// - the Service's `legation.io/failover` annotation sets the set's failover policy; a value that does
///   not parse is reported (when the Service changes) and ignored: the server's default applies.
public struct EndpointSliceAggregator: Sendable {
    /// A part of an object that was skipped, with why (to log and count).
    public struct Rejection: Sendable, Equatable, CustomStringConvertible {
        public var object: String
        public var reason: String
        public var description: String { "\(object): \(reason)" }
    }

    public let source: SourceCluster
    public let selection: ServiceSelection
    private var services: [ServiceKey: ServiceObject] = [:]
    /// Each service's failover policy, from its annotation (absent: none, or one that did not parse).
    private var failoverPolicies: [ServiceKey: FailoverPolicy] = [:]
    private var slices: [ServiceKey: [String: EndpointSliceObject]] = [:]
    /// Which service each slice (`namespace/name`) is filed under.
    private var sliceOwners: [String: ServiceKey] = [:]
    private var published: [ServiceKey: EndpointSet] = [:]
    /// Each slice's endpoints as converted for its service's ports, by resource version: an event
    /// converts only the slice it changed.
    private var converted: [ServiceKey: [String: ConvertedSlice]] = [:]

    /// One slice's endpoints as converted for its service's ports, ready to merge (`SortedEndpoints`).
    private struct ConvertedSlice: Sendable {
        var resourceVersion: String
        var servicePorts: [ServicePort]
        var targets: [UInt16]
        var sorted: SortedEndpoints
        /// The slice's items as read and what each became (nil: rejected), in the slice's order: the
        /// next version reuses an item's endpoint when the watch memo handed over the identical item.
        var items: [EndpointSliceObject.Endpoint]
        var made: [Endpoint?]
        var rejections: [Rejection]
    }

    public init(source: SourceCluster, selection: ServiceSelection = ServiceSelection()) {
        self.source = source
        self.selection = selection
    }

    /// The sets currently exported.
    public var sets: [ServiceKey: EndpointSet] { published }

    // MARK: Events

    /// A Service was added or modified.
    public mutating func upsert(service: ServiceObject) -> (changes: [EndpointChange], rejections: [Rejection]) {
        guard let key = key(namespace: service.metadata.namespace, name: service.metadata.name) else {
            return ([], [Rejection(object: "service \(service.metadata.name.prefix(80))", reason: "namespace or name is not a DNS label")])
        }
        services[key] = service
        let problem = readFailover(of: service, key: key)
        let result = rebuild(key)
        return (result.changes, problem.map { [$0] + result.rejections } ?? result.rejections)
    }

    /// A Service was deleted.
    public mutating func delete(service: ServiceObject) -> [EndpointChange] {
        guard let key = key(namespace: service.metadata.namespace, name: service.metadata.name) else { return [] }
        services[key] = nil
        failoverPolicies[key] = nil
        return rebuild(key).changes
    }

    /// An EndpointSlice was added or modified.
    public mutating func upsert(slice: EndpointSliceObject) -> (changes: [EndpointChange], rejections: [Rejection]) {
        guard let serviceName = slice.serviceName,
            let key = key(namespace: slice.metadata.namespace, name: serviceName)
        else {
            return ([], [])  // not a service's slice (or a malformed label): nothing to export
        }
        // A slice may move to another service only by being recreated; drop any old placement anyway
        // (and rebuild the service it left).
        let owner = Self.owner(key, slice)
        var left: [EndpointChange] = []
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
    public mutating func delete(slice: EndpointSliceObject) -> [EndpointChange] {
        guard let serviceName = slice.serviceName, let key = key(namespace: slice.metadata.namespace, name: serviceName) else { return [] }
        sliceOwners[Self.owner(key, slice)] = nil
        slices[key]?[slice.metadata.name] = nil
        if slices[key]?.isEmpty == true { slices[key] = nil }
        return rebuild(key).changes
    }

    /// Replaces everything (an initial list). - Returns: the complete set of exported services, for
    /// `EndpointPublisher.replaceAll`.
    public mutating func replaceAll(services: [ServiceObject], slices: [EndpointSliceObject]) -> (
        sets: [EndpointSet], rejections: [Rejection]
    ) {
        var rejections = replace(services: services, rebuilding: false)
        rejections += replace(slices: slices)
        return (published.values.sorted { $0.service < $1.service }, rejections)
    }

    /// Replaces every Service (a relist of services after 410 Gone); rebuilds every set.
    @discardableResult
    public mutating func replace(services: [ServiceObject], rebuilding: Bool = true) -> [Rejection] {
        self.services = [:]
        failoverPolicies = [:]
        var rejections: [Rejection] = []
        for service in services {
            if let key = key(namespace: service.metadata.namespace, name: service.metadata.name) {
                self.services[key] = service
                if let problem = readFailover(of: service, key: key) { rejections.append(problem) }
            } else {
                rejections.append(
                    Rejection(object: "service \(service.metadata.name.prefix(80))", reason: "namespace or name is not a DNS label"))
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

    /// Reads a Service's failover annotation into `failoverPolicies`. - Returns: why it was ignored.
    private mutating func readFailover(of service: ServiceObject, key: ServiceKey) -> Rejection? {
        guard let text = service.metadata.annotations?[FailoverPolicy.annotation] else {
            failoverPolicies[key] = nil
            return nil
        }
        do {
            failoverPolicies[key] = try FailoverPolicy(parsing: text)
            return nil
        } catch {
            failoverPolicies[key] = nil
            return Rejection(
                object: "service \(key) annotation \(FailoverPolicy.annotation)",
                reason: "\(error.message); the server's default order applies")
        }
    }

    // MARK: Building

    /// A slice's key in `sliceOwners`: slice names are unique per namespace only.
    private static func owner(_ key: ServiceKey, _ slice: EndpointSliceObject) -> String {
        "\(key.namespace)/\(slice.metadata.name)"
    }

    private func key(namespace: String?, name: String) -> ServiceKey? {
        try? ServiceKey(namespace: namespace ?? "default", name: name)
    }

    /// Recomputes one service's set (or applies one built already); reports a change only when the
    /// content differs.
    private mutating func rebuild(_ key: ServiceKey, prebuilt: Built? = nil) -> (changes: [EndpointChange], rejections: [Rejection]) {
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
                return Built(
                    set: .failure(ModelError(.invalidPort, "port \(port.name ?? "") has number \(port.port)")), conversions: [:],
                    rejections: rejections)
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
        let set = Result { () throws(ModelError) in
            let (endpoints, content) = SortedEndpoints.merge(lists.map(\.sorted), ports: ports)
            return try EndpointSet(
                source: source, service: key, ports: ports, mergedEndpoints: endpoints, content: content, failover: failoverPolicies[key])
        }
        return Built(set: set, conversions: cache, rejections: rejections)
    }

    /// One slice's endpoints, with target ports aligned to the service's ports. An item identical to one
    /// of the previous version (the watch memo's reuse) keeps what it was made into; the rest are
    /// converted and validated.
    private func convert(
        _ slice: EndpointSliceObject, named sliceName: String, of key: ServiceKey, ports: [ServicePort], previous: ConvertedSlice?
    ) -> ConvertedSlice {
        var targetsByName: [String: UInt16] = [:]
        for port in slice.ports ?? [] {
            if let number = port.port.flatMap({ UInt16(exactly: $0) }), number > 0 { targetsByName[port.name ?? ""] = number }
        }
        let targets = ports.map { targetsByName[$0.name] ?? 0 }
        let items = slice.endpoints ?? []
        var made = previous?.targets == targets ? Self.reused(items, from: previous!) : [Endpoint?](repeating: nil, count: items.count)
        var rejections: [Rejection] = []
        for (index, item) in items.enumerated() where made[index] == nil {
            guard let address = item.addresses.first else {
                rejections.append(Rejection(object: "slice \(key.namespace)/\(sliceName) endpoint \(index)", reason: "no address"))
                continue
            }
            let ready = item.conditions?.ready ?? true
            let conditions = Endpoint.Conditions(
                ready: ready, serving: item.conditions?.serving ?? ready, terminating: item.conditions?.terminating ?? false)
            let pod =
                item.targetRef.flatMap { reference -> String? in
                    guard reference.kind == "Pod", let name = reference.name else { return nil }
                    return "\(reference.namespace ?? key.namespace)/\(name)"
                } ?? ""
            let zone = item.zone ?? item.deprecatedTopology?["topology.kubernetes.io/zone"] ?? ""
            do {
                made[index] = try Endpoint(
                    address: address, targetPorts: targets, zone: zone, node: item.nodeName ?? "",
                    hostname: item.hostname ?? "", targetPod: pod, conditions: conditions)
            } catch {
                rejections.append(Rejection(object: "slice \(key.namespace)/\(sliceName) endpoint \(index)", reason: error.description))
            }
        }
        return ConvertedSlice(
            resourceVersion: slice.metadata.resourceVersion ?? "", servicePorts: ports, targets: targets,
            sorted: SortedEndpoints(slice: made.compactMap { $0 }), items: items, made: made, rejections: rejections)
    }

    /// What the previous version made of each item that is identical to one of its items (the watch
    /// memo's reuse), looked for where the previous item was found and a step or two around it (after
    /// insertions or removals); nil for the rest.
    private static func reused(_ items: [EndpointSliceObject.Endpoint], from previous: ConvertedSlice) -> [Endpoint?] {
        items.withUnsafeBufferPointer { items in
            previous.items.withUnsafeBufferPointer { before in
                var made = [Endpoint?](repeating: nil, count: items.count)
                var next = 0
                for index in items.indices {
                    guard let found = nearbyMatch(next, count: before.count, { before[$0].isIdentical(to: items[index]) }) else { continue }
                    made[index] = previous.made[found]
                    next = found + 1
                }
                return made
            }
        }
    }

    private static func sliceAppProtocol(_ sortedSlices: [(key: String, value: EndpointSliceObject)], portName: String) -> String? {
        for (_, slice) in sortedSlices {
            if let value = slice.ports?.first(where: { ($0.name ?? "") == portName })?.appProtocol { return value }
        }
        return nil
    }
}
