import Shared

/// The protocol logic of one incremental (delta) xDS stream, as a value type: requests and snapshots in,
/// responses out. Beside `SotWStreamStateMachine`, over the same snapshots and encoded resources.
///
/// The rules (Envoy's xDS protocol, "Incremental xDS"; design §3):
/// - subscriptions change by `resource_names_subscribe` / `_unsubscribe`, honoured even when the request
///   echoes a stale nonce; `*` subscribes to everything (and an empty first CDS request, the legacy
///   wildcard), explicit names may be subscribed beside it;
/// - a name subscribed to is sent even when the client holds it (subscribed again, or unsubscribed and
///   subscribed under the wildcard);
/// - `initial_resource_versions` (a reconnect) says what the client holds: only what differs is sent, and
///   names it holds that no longer exist are removed;
/// - only changed resources go out; deletions and subscribed names that do not exist go in
///   `removed_resources`;
/// - ACK/NACK per nonce; a NACKed version is not sent again and the client keeps what it had;
/// - one response in flight per type; changes meanwhile are merged into the next;
/// - after a Cluster changes, its ClusterLoadAssignment is sent again right after it (warming).
public struct DeltaStreamStateMachine: Sendable {
    public typealias Action = XDSAction<OutboundDeltaResponse>

    public struct TypeState: Sendable {
        public internal(set) var subscribed = SortedNames()
        public internal(set) var wildcard = false
        /// Name → what the client holds (or will, once it ACKs the response in flight). Changed only
        /// through `setKnown`, which keeps `knownSum` with it.
        public private(set) var held = KnownVersions()
        /// Name → version the client holds (for views and tests).
        public var known: [String: String] { held.versions }
        /// The sum of the (name, version) digests of `known`: the `system_version_info` of the next
        /// response, kept as `known` changes rather than recomputed over every name at each response.
        private(set) var knownSum: UInt64 = 0
        public internal(set) var nacked: [String: String] = [:]
        public internal(set) var pendingNonce: String?
        public internal(set) var lastNack: String?
        public internal(set) var responseCount = 0
        public internal(set) var ackCount = 0
        public internal(set) var nackCount = 0
        /// What the response in flight changed: each name (once) and the entry before it (nil: absent),
        /// to undo on NACK. A list, not a dictionary: a first response changes every name it sends, and
        /// it is read only on a NACK.
        var pendingUndo: [(name: String, previous: KnownVersions.Entry?)] = []
        /// Subscribed names already reported absent.
        var reportedAbsent: Set<String> = []
        var checkedRevision: UInt64 = 0
        var dirty: Set<String> = []
        var checkEverything = true
        var lastChanged: [String] = []

        /// `lastChanged`, emptied: it only serves to warm the response just made, and is not kept.
        mutating func takeLastChanged() -> [String] {
            defer { lastChanged = [] }
            return lastChanged
        }

        func isSubscribed(_ name: String) -> Bool { wildcard || subscribed.contains(name) }

        /// The names of `names` (a snapshot's, sorted) this stream subscribes to, in order.
        func subscribedNames(in names: [String]) -> SortedNames.Members { subscribed.members(of: names, everyName: wildcard) }

        /// Sets what the client holds of `name`. A sent resource carries its pair's digest; a reported
        /// version's is hashed now.
        mutating func setKnown(_ name: String, _ entry: KnownVersions.Entry?) {
            func digest(_ entry: KnownVersions.Entry) -> UInt64 {
                switch entry {
                case .sent(let resource): resource.memberDigest
                case .reported(let version): EncodedResource.memberDigest(name: name, version: version)
                }
            }
            let old = held.set(name, entry)
            if let old { knownSum &-= digest(old) }
            if let entry { knownSum &+= digest(entry) }
        }

        /// Room to hold `count` resources without growing.
        mutating func reserveHeld(_ count: Int) {
            held.reserveCapacity(count)
        }

        /// Sets what the client reported holding of `name` (`initial_resource_versions`): the snapshot's
        /// resource when it is that version.
        mutating func setReported(
            _ name: String, _ version: String, type: ResourceType, snapshot: ResourceSnapshot, locality: ClientLocality
        ) {
            if let current = snapshot.resource(type, named: name, for: locality), current.version == version {
                setKnown(name, .sent(current))
            } else {
                setKnown(name, .reported(version))
            }
        }
    }

    public let allowedTypes: Set<ResourceType>
    public let limits: StreamLimits
    public private(set) var node: ClientNode?
    /// Where the client is (from its node): which priorities its load assignments carry.
    public private(set) var locality = ClientLocality.unknown
    public private(set) var types: [ResourceType: TypeState] = [:]
    public private(set) var staleNonces = 0
    private var nonceCounter: UInt64 = 0

    public init(allowedTypes: Set<ResourceType>, limits: StreamLimits = StreamLimits()) {
        self.allowedTypes = allowedTypes
        self.limits = limits
    }

    public mutating func onRequest(_ request: DeltaXDSRequest, snapshot: ResourceSnapshot) -> Action {
        let type: ResourceType
        switch validate(request) {
        case .success(let valid): type = valid
        case .failure(let error): return .fail(error)
        }
        if node == nil {
            guard let first = request.node else {
                return .fail(XDSError(.invalidArgument, "the first request of a stream must carry a node"))
            }
            node = first
            locality = ClientLocality(first)
        }
        // Taken out while it changes, so that its dictionaries are not shared with `types` and change in
        // place (and not read in place: `types[type] == nil` would copy the whole state).
        let existing = types.removeValue(forKey: type)
        let isFirst = existing == nil
        var state = existing ?? TypeState()

        if !request.responseNonce.isEmpty {
            if request.responseNonce == state.pendingNonce {
                state.pendingNonce = nil
                if let refusal = request.errorMessage {
                    for (name, previous) in state.pendingUndo {  // (each name once)
                        if let refused = state.held[name] { state.nacked[name] = refused.version }
                        state.setKnown(name, previous)
                    }
                    state.nackCount += 1
                    state.lastNack = String(refusal.utf8.prefix(limits.maximumErrorMessageBytes)) ?? ""
                } else {
                    state.ackCount += 1
                }
                state.pendingUndo = []
            } else {
                staleNonces += 1  // ACK/NACK of an older response: only its subscription changes count
            }
        }

        // Subscriptions.
        let subscribe = Set(request.subscribe)
        let unsubscribe = Set(request.unsubscribe)
        if subscribe.contains("*") || (isFirst && subscribe.isEmpty && type.allowsWildcard) {
            if !state.wildcard { state.checkEverything = true }
            state.wildcard = true
        }
        if unsubscribe.contains("*") {
            state.wildcard = false
            state.checkEverything = true
        }
        // A subscription asks for the resource even when the client holds it already (subscribed again,
        // or under the wildcard): the server must still send it ("Subscribing to Resources"). Envoy
        // relies on this when a cluster is removed and added back. On a reconnect, the versions in
        // `initial_resource_versions` (set below) say what it holds, and only differences go out.
        let subscribing = subscribe.subtracting(["*"])
        let unsubscribing = unsubscribe.subtracting(["*"])
        state.subscribed.formUnion(subscribing)
        state.subscribed.subtract(unsubscribing)
        if !subscribing.isEmpty { state.subscribed.share(snapshot.names(type)) }
        // (Each only where it can change something: a first subscription of a thousand names to a
        // stream that holds nothing and checks everything at its next response does none of it.)
        for name in subscribing {
            if !state.checkEverything { state.dirty.insert(name) }
            if state.held.count > 0 { state.setKnown(name, nil) }
            if !state.reportedAbsent.isEmpty { state.reportedAbsent.remove(name) }
        }
        for name in unsubscribing {
            state.reportedAbsent.remove(name)
            if !state.wildcard { state.setKnown(name, nil) }
        }
        if isFirst {
            for (name, version) in request.initialResourceVersions {
                state.setReported(name, version, type: type, snapshot: snapshot, locality: locality)
                state.dirty.insert(name)
            }
        }

        var responses: [OutboundDeltaResponse] = []
        if state.pendingNonce == nil, let response = nextResponse(&state, type: type, snapshot: snapshot) { responses.append(response) }
        let changed = state.takeLastChanged()
        types[type] = state
        if type == .cluster, !responses.isEmpty, let endpoints = warm(changed: changed, snapshot: snapshot) {
            responses.append(endpoints)
        }
        return responses.isEmpty ? .none : .send(responses)
    }

    public mutating func onSnapshot(_ snapshot: ResourceSnapshot) -> Action {
        var responses: [OutboundDeltaResponse] = []
        var warmed = false
        for type in types.keys.sorted() {
            if type == .endpoint, warmed { continue }
            // Taken out, not copied: a copy would make the next change copy its dictionaries.
            guard var state = types.removeValue(forKey: type) else { continue }
            guard state.pendingNonce == nil else {
                types[type] = state
                continue
            }
            let response = nextResponse(&state, type: type, snapshot: snapshot)
            let changed = state.takeLastChanged()
            types[type] = consume state
            if let response {
                responses.append(response)
                if type == .cluster {
                    warmed = true
                    if let endpoints = warm(changed: changed, snapshot: snapshot) { responses.append(endpoints) }
                }
            }
        }
        return responses.isEmpty ? .none : .send(responses)
    }

    private func validate(_ request: DeltaXDSRequest) -> Result<ResourceType, XDSError> {
        let names = [request.subscribe, request.unsubscribe, Array(request.initialResourceVersions.keys)].joined()
        let count = request.subscribe.count + request.unsubscribe.count + request.initialResourceVersions.count
        if let error = RequestValidation.check(names: names, count: count, limits: limits)
            ?? RequestValidation.check(node: request.node, limits: limits)
        {
            return .failure(error)
        }
        return RequestValidation.type(of: request.typeURL, allowed: allowedTypes)
    }

    private mutating func nextResponse(_ state: inout TypeState, type: ResourceType, snapshot: ResourceSnapshot) -> OutboundDeltaResponse? {
        var resources: [EncodedResource] = []
        var removed: [String] = []
        var undo: [(name: String, previous: KnownVersions.Entry?)] = []
        /// `current`: what the snapshot has of `name`, as this client gets it.
        func visit(_ name: String, subscribed: Bool, current: EncodedResource?) {
            let held = state.held[name]
            guard subscribed || held != nil else { return }
            if subscribed, let current {
                if !state.reportedAbsent.isEmpty { state.reportedAbsent.remove(name) }  // (hashing the name only when it can be there)
                if let held, held.isVersion(of: current) { return }
                guard state.nacked.isEmpty || state.nacked[name] != current.version else { return }
                undo.append((name, held))
                state.setKnown(name, .sent(current))
                resources.append(current)
            } else if subscribed {
                // Subscribed but absent: removed if the client holds it, or (explicit names) reported once.
                if held != nil || (state.subscribed.contains(name) && !state.reportedAbsent.contains(name)) {
                    undo.append((name, held))
                    state.setKnown(name, nil)
                    state.reportedAbsent.insert(name)
                    removed.append(name)
                }
            } else {
                // Not subscribed any more (wildcard dropped): the client forgets it.
                state.setKnown(name, nil)
            }
        }

        let changed = state.checkEverything ? nil : snapshot.changedNames(type, after: state.checkedRevision)?.union(state.dirty)
        state.checkedRevision = snapshot.revision
        state.dirty = []
        state.checkEverything = false
        func visit(_ name: String) {
            visit(name, subscribed: state.isSubscribed(name), current: snapshot.resource(type, named: name, for: locality))
        }
        if let changed {
            for name in changed.sorted() { visit(name) }
        } else {
            // Everything. When that is most of the snapshot, its resources are walked in their order, as
            // localized for this client once per snapshot (no lookup, no sort per stream), then the names
            // the stream has that the snapshot does not (these can only be removals, so responses still
            // list resources and removals by name).
            let all = snapshot.names(type)
            if state.wildcard || (state.subscribed.count + state.held.count) * 4 > all.count {
                // Held names the snapshot lacks, found before the walk fills what the stream holds.
                var others = Set(state.held.names.lazy.filter { snapshot.resource(type, named: $0) == nil })
                let localized = snapshot.localizedInOrder(type, for: locality)
                // Room for a first response at once, not grown by doubling (rehashing every name) as it is made.
                if state.held.count == 0 { state.reserveHeld(state.wildcard ? all.count : min(all.count, state.subscribed.count)) }
                var subscribed = state.subscribed.cursor()
                var subscribedFound = 0
                for (offset, name) in all.enumerated() {
                    let named = !state.subscribed.isEmpty && subscribed.contains(name)
                    if named { subscribedFound += 1 }
                    visit(name, subscribed: state.wildcard || named, current: localized[offset])
                }
                // Names subscribed explicitly (beside the wildcard too) that the snapshot lacks.
                if subscribedFound < state.subscribed.count {
                    for name in state.subscribed where snapshot.resource(type, named: name) == nil { others.insert(name) }
                }
                for name in others.sorted() { visit(name) }
            } else {
                for name in Set(state.subscribed).union(state.held.names).sorted() { visit(name) }
            }
        }
        state.lastChanged = resources.map(\.name)
        guard !resources.isEmpty || !removed.isEmpty else { return nil }
        nonceCounter += 1
        state.pendingNonce = String(nonceCounter)
        state.pendingUndo = undo
        state.responseCount += 1
        let version = EncodedResource.hex(state.knownSum)
        return OutboundDeltaResponse(
            type: type, systemVersionInfo: version, nonce: String(nonceCounter), resources: resources, removed: removed)
    }

    /// Warming: every cluster just sent (`changed`) gets its load assignment sent again, right after it.
    private mutating func warm(changed: [String], snapshot: ResourceSnapshot) -> OutboundDeltaResponse? {
        guard var endpoints = types.removeValue(forKey: .endpoint) else { return nil }
        for (_, name) in endpoints.subscribedNames(in: changed) where endpoints.held[name] != nil {
            endpoints.setKnown(name, nil)
            endpoints.dirty.insert(name)
        }
        defer { types[.endpoint] = endpoints }
        guard endpoints.pendingNonce == nil else { return nil }
        return nextResponse(&endpoints, type: .endpoint, snapshot: snapshot)
    }
}
