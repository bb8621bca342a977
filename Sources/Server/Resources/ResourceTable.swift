import Shared

/// The server's single writer of resources: applies store deliveries to the merged index, rebuilds the
/// resources of the clusters that changed, and produces the next shared `ResourceSnapshot`.
///
/// Deliveries can be applied many times before one `snapshot()` (debouncing): only the clusters marked
/// dirty in between are rebuilt, and a rebuild that gives identical bytes changes nothing.
public struct ResourceTable: Sendable {
    /// How many revisions of change history a snapshot carries for streams that fell behind.
    public static let historyDepth = 256

    public private(set) var index = EndpointIndex()
    private let builder: ResourceBuilder
    private var resources: [ResourceType: [String: EncodedResource]] = [:]
    /// `resources`' names by type, in order; sorted again only when names come or go.
    private var sortedNames: [ResourceType: [String]] = [:]
    private var history: [(revision: UInt64, changes: [ResourceType: Set<String>])] = []
    private var dirty = Set<ClusterKey>()
    /// The listener (and route) name each gRPC cluster has now.
    private var listenerNames: [ClusterKey: String] = [:]
    public private(set) var revision: UInt64 = 0

    public init(options: ResourceOptions = ResourceOptions()) {
        self.builder = ResourceBuilder(options: options)
    }

    /// Applies one source's updates. - Returns: whether any cluster became dirty.
    @discardableResult
    public mutating func apply(_ updates: [EndpointChange], from source: SourceCluster) -> Bool {
        let changed = index.apply(updates, from: source)
        dirty.formUnion(changed)
        return !changed.isEmpty
    }

    /// One dirty cluster's resources as they are now, built apart from the table (so that a cold start's
    /// thousand are built on every core at once) and then applied to it in order.
    private struct Built: Sendable {
        var key: ClusterKey
        var cluster: EncodedResource?
        var endpoint: EncodedResource?
        /// For a gRPC port: the listener (and route) name, and both resources.
        var listenerName: String?
        var listener: EncodedResource?
        var route: EncodedResource?
    }

    /// (Not mutating: the workers share the table as it is, and nothing of it outlives the call, so the
    /// changes that follow do not copy its dictionaries.)
    private func build(_ keys: [ClusterKey]) -> [Built] {
        keys.concurrentMap(minimumPerWorker: 32) { build($0) }
    }

    private func build(_ key: ClusterKey) -> Built {
        var built = Built(key: key)
        guard let port = index.port(of: key) else { return built }
        built.cluster = try? EncodedResource(type: .cluster, name: key.name, message: builder.cluster(key, port: port))
        built.endpoint = loadAssignment(key, members: index.members(of: key))
        // Proxyless gRPC: a listener and a route for gRPC ports.
        if port.isHTTP2 {
            let name = ResourceBuilder.listenerName(key, port: port)
            built.listenerName = name
            built.listener = try? EncodedResource(type: .listener, name: name, message: builder.listener(key, port: port))
            built.route = try? EncodedResource(type: .route, name: name, message: builder.route(key, port: port))
        }
        return built
    }

    /// Rebuilds the dirty clusters. - Returns: the next snapshot, or nil when no resource's bytes changed.
    public mutating func snapshot() -> ResourceSnapshot? {
        var changes: [ResourceType: Set<String>] = [:]
        var namesChanged: Set<ResourceType> = []
        for built in build(dirty.sorted()) {
            let (key, name) = (built.key, built.key.name)
            update(.cluster, name, built.cluster, &changes, &namesChanged)
            update(.endpoint, name, built.endpoint, &changes, &namesChanged)
            if let previous = listenerNames[key], previous != built.listenerName {
                update(.listener, previous, nil, &changes, &namesChanged)
                update(.route, previous, nil, &changes, &namesChanged)
            }
            listenerNames[key] = built.listenerName
            if let listenerName = built.listenerName {
                update(.listener, listenerName, built.listener, &changes, &namesChanged)
                update(.route, listenerName, built.route, &changes, &namesChanged)
            }
        }
        dirty.removeAll(keepingCapacity: true)
        guard !changes.isEmpty else { return nil }
        for type in namesChanged { sortedNames[type] = resources[type, default: [:]].keys.sorted() }
        revision += 1
        history.append((revision, changes))
        if history.count > Self.historyDepth { history.removeFirst(history.count - Self.historyDepth) }
        return ResourceSnapshot(revision: revision, resources: resources, sortedNames: sortedNames, history: history)
    }

    /// A cluster's load assignment, with its localities' priorities when its failover policy (the
    /// service's, else the server's default) makes any and it has more than one locality.
    private func loadAssignment(_ key: ClusterKey, members: [EndpointIndex.Member]) -> EncodedResource {
        let parts = builder.loadAssignmentParts(key, members: members)
        let policy = builder.options.localityPriorities ? index.failover(of: key) ?? builder.options.failoverOrder : .off
        let priorities =
            policy.isOff || parts.localities.count < 2
            ? nil : LocalityPriorities(policy: policy, localities: parts.localities, headEnd: parts.headEnd)
        return EncodedResource(type: .endpoint, name: key.name, resource: parts.bytes, priorities: priorities)
    }

    private mutating func update(
        _ type: ResourceType, _ name: String, _ resource: EncodedResource?, _ changes: inout [ResourceType: Set<String>],
        _ namesChanged: inout Set<ResourceType>
    ) {
        let previous = resources[type]?[name]
        if let resource, resource.isSameContent(as: previous) { return }
        if resource == nil, previous == nil { return }
        if (resource == nil) != (previous == nil) { namesChanged.insert(type) }
        resources[type, default: [:]][name] = resource
        changes[type, default: []].insert(name)
    }
}
