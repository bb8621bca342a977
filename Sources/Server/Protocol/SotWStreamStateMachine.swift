/// The protocol logic of one state-of-the-world xDS stream (ADS, or a single-type CDS/EDS stream), as a
/// value type: requests and new snapshots in, responses to send out. No sockets, no clocks, no tasks, no
/// wire types: the serving edge builds the `XDSRequest` and executes the action; tests drive it directly.
///
/// The rules (design §3):
/// - one response in flight per type: the next waits for its ACK or NACK, and changes made meanwhile
///   are coalesced into it;
/// - ACK echoes the nonce with no `error_detail`; NACK carries `error_detail`. A NACKed version is never
///   sent again to this stream; the client keeps its last ACKed one, and full-state responses carry that
///   one in its place;
/// - a request with a stale nonce is ignored (the client will answer the newer response);
/// - CDS carries full state, EDS only the resources that changed; nothing is sent without a change;
/// - names requested but absent are remembered and sent when they appear;
/// - legacy wildcard: an empty first CDS request means every cluster, until names are given; `*` too;
/// - after a Cluster is sent, its ClusterLoadAssignment is sent again (Envoy warms the cluster until it
///   comes), and CDS goes before EDS;
/// - a first request whose `version_info` equals the version of what the server would send is taken
///   as "the client already has it" (it reconnected from a replica with the same content).
public struct SotWStreamStateMachine: Sendable {
    /// What the shell must do.
    public typealias Action = XDSAction<OutboundResponse>

    /// One resource type's state on this stream.
    public struct TypeState: Sendable {
        /// Explicitly requested names.
        public internal(set) var subscribed = SortedNames()
        /// The names of the last request, as sent (the same storage as `subscribed` when they came sorted).
        var requestedNames: [String] = []
        public internal(set) var wildcard = false
        /// What the client has, or will have once it ACKs the response in flight. Changed only through
        /// the methods below, which keep `sentDigest` with it.
        public private(set) var sent = HeldResources()
        /// The sum of `sent`'s member digests: its `version_info` (`EncodedResource.version(ofSet:)`),
        /// kept as it changes, so a response does not walk every resource the client holds.
        private(set) var sentDigest: UInt64 = 0
        /// What `sent` held at the last ACK for each name changed since (nil: absent): an ACK clears it,
        /// a NACK puts it back. Kept as changes rather than a second dictionary, so that sending never
        /// copies a dictionary the ACKed state shares.
        var sinceAck: [String: EncodedResource?] = [:]
        /// Nothing was ever ACKed (nor adopted on reconnect): the client's ACKed state is empty, and
        /// `sinceAck` is not kept (a stream's first response of a thousand resources would fill it with
        /// a thousand "it had nothing" entries).
        private(set) var ackedNothing = true
        /// What the client has ACKed.
        public var acked: [String: EncodedResource] {
            if ackedNothing { return [:] }
            var acked = sent.dictionary
            for (name, previous) in sinceAck { acked[name] = previous }
            return acked
        }

        func ackedResource(_ name: String) -> EncodedResource? {
            if ackedNothing { return nil }
            if let previous = sinceAck[name] { return previous }
            return sent[name]
        }

        /// Changes what the client will hold, remembering what it ACKed.
        mutating func setSent(_ name: String, _ resource: EncodedResource?) {
            if !ackedNothing, sinceAck[name] == nil { sinceAck[name] = .some(sent[name]) }
            replaceSent(name, resource)
        }

        /// Room for a first response of `count` resources, so that what the client holds grows once
        /// rather than by doubling. Only while it holds nothing: a later response mostly replaces what is
        /// there, and reserving for it would keep the dictionary larger than it needs to be.
        mutating func reserveForFirstResponse(_ count: Int) {
            guard sent.isEmpty, count > 8 else { return }
            sent.reserveCapacity(count)
        }

        /// The client no longer holds `name` at all (unsubscribed).
        mutating func forget(_ name: String) {
            replaceSent(name, nil)
            sinceAck[name] = nil
        }

        /// A NACK: the client keeps what it ACKed. - Returns: the versions it refused, by name.
        mutating func revertToAcked() -> [(name: String, version: String)] {
            if ackedNothing {
                let refused = sent.resources.map { (name: $0.name, version: $0.version) }
                sent = HeldResources()
                sentDigest = 0
                return refused
            }
            var refused: [(name: String, version: String)] = []
            for (name, previous) in sinceAck {
                if let sentVersion = sent[name]?.version, previous?.version != sentVersion { refused.append((name, sentVersion)) }
                replaceSent(name, previous)
            }
            sinceAck = [:]
            return refused
        }

        /// The client holds exactly `resources` (found on reconnect), all ACKed.
        mutating func adopt(_ resources: [EncodedResource]) {
            sent = HeldResources(resources)
            sentDigest = sent.resources.reduce(0) { $0 &+ $1.memberDigest }
            sinceAck = [:]
            ackedNothing = false
        }

        /// An ACK: the client holds what was sent.
        mutating func acknowledge() {
            sinceAck = [:]
            ackedNothing = false
        }

        private mutating func replaceSent(_ name: String, _ resource: EncodedResource?) {
            let previous: EncodedResource?
            if let resource { previous = sent.update(resource) } else { previous = sent.remove(name) }
            if let previous { sentDigest &-= previous.memberDigest }
            if let resource { sentDigest &+= resource.memberDigest }
        }
        /// Versions the client refused, by name: never sent again.
        public internal(set) var nacked: [String: String] = [:]
        /// The nonce of the response in flight.
        public internal(set) var pendingNonce: String?
        /// The nonce of the latest response; requests that echo an older one are stale.
        public internal(set) var lastNonce: String?
        public internal(set) var sentVersionInfo = ""
        public internal(set) var ackedVersionInfo = ""
        public internal(set) var lastNack: String?
        public internal(set) var ackCount = 0
        public internal(set) var nackCount = 0
        public internal(set) var responseCount = 0
        /// The first request was answered (or found already satisfied on reconnect).
        var answered = false
        /// Names whose version the last full-state response changed (they warm on the client).
        var lastChanged: [String] = []

        /// `lastChanged`, emptied: it only serves to warm the response just made, and is not kept.
        mutating func takeLastChanged() -> [String] {
            defer { lastChanged = [] }
            return lastChanged
        }
        /// The snapshot revision whose changes have been considered.
        var checkedRevision: UInt64 = 0
        /// Names to consider at the next check whatever the history says.
        var dirty: Set<String> = []
        var checkEverything = true

        func isSubscribed(_ name: String) -> Bool { wildcard || subscribed.contains(name) }

        /// The names of `names` (a snapshot's, sorted) this stream subscribes to, in order.
        func subscribedNames(in names: [String]) -> SortedNames.Members { subscribed.members(of: names, everyName: wildcard) }
    }

    public let allowedTypes: Set<ResourceType>
    public let limits: StreamLimits
    public private(set) var node: ClientNode?
    /// Where the client is (from its node): which priorities its load assignments carry.
    public private(set) var locality = ClientLocality.unknown
    public private(set) var types: [ResourceType: TypeState] = [:]
    public private(set) var staleNonces = 0
    private var nonceCounter: UInt64 = 0
    /// The last names that passed `RequestValidation.check(names:)`.
    private var checkedNames: [String] = []

    /// - Parameter allowedTypes: every type on ADS; one type on a CDS or EDS stream.
    public init(allowedTypes: Set<ResourceType>, limits: StreamLimits = StreamLimits()) {
        self.allowedTypes = allowedTypes
        self.limits = limits
    }

    // MARK: - Inputs

    /// A request from the client.
    public mutating func onRequest(_ request: XDSRequest, snapshot: ResourceSnapshot) -> Action {
        let type: ResourceType
        switch validate(request) {
        case .success(let validType): type = validType
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
        // place (and read taken out: `types[type]?.lastNonce` would copy the whole state, a retain per field).
        let existing = types.removeValue(forKey: type)
        if !request.responseNonce.isEmpty, request.responseNonce != existing?.lastNonce {
            staleNonces += 1
            types[type] = existing
            return .none
        }
        let isNewType = existing == nil
        var state = existing ?? TypeState()
        let action = answer(request, state: &state, type: type, isNewType: isNewType, snapshot: snapshot)
        let changed = state.takeLastChanged()
        types[type] = consume state
        if type == .cluster, case .send(let responses) = action, let endpoints = warm(changed: changed, snapshot: snapshot) {
            return .send(responses + [endpoints])
        }
        return action
    }

    /// `onRequest` for a request of `type` that is not stale; `state` is that type's, taken out.
    private mutating func answer(
        _ request: XDSRequest, state: inout TypeState, type: ResourceType, isNewType: Bool, snapshot: ResourceSnapshot
    )
        -> Action
    {
        let isFirst = isNewType || request.responseNonce.isEmpty
        if !request.responseNonce.isEmpty, request.responseNonce == state.pendingNonce {
            state.pendingNonce = nil
            if let refusal = request.errorMessage {
                // NACK: the client keeps what it ACKed before; remember the refused versions.
                for (name, version) in state.revertToAcked() { state.nacked[name] = version }
                state.sentVersionInfo = state.ackedVersionInfo
                state.nackCount += 1
                state.lastNack = String(refusal.utf8.prefix(limits.maximumErrorMessageBytes)) ?? ""
            } else {
                state.acknowledge()
                state.ackedVersionInfo = state.sentVersionInfo
                state.ackCount += 1
            }
        }

        updateSubscription(
            &state, type: type, names: request.resourceNames, snapshot: snapshot,
            isFirst: isFirst && state.responseCount == 0 && !state.wildcard && state.subscribed.isEmpty)

        if isFirst, request.responseNonce.isEmpty, !request.versionInfo.isEmpty {
            // A reconnect: if the client already holds exactly what this server would send, adopt it.
            let desired = desiredInOrder(state, type: type, snapshot: snapshot)
            let version = EncodedResource.version(ofSet: desired)
            if version == request.versionInfo {
                state.adopt(desired)
                state.sentVersionInfo = version
                state.ackedVersionInfo = version
                state.checkedRevision = snapshot.revision
                state.dirty = []
                state.checkEverything = false
                state.answered = true
            }
        }

        guard state.pendingNonce == nil, let response = nextResponse(&state, type: type, snapshot: snapshot) else { return .none }
        return .send([response])
    }

    /// A new snapshot: send what changed to every type not waiting for an ACK, CDS first.
    public mutating func onSnapshot(_ snapshot: ResourceSnapshot) -> Action {
        var responses: [OutboundResponse] = []
        var warmed = false
        for type in types.keys.sorted() {
            if type == .endpoint, warmed { continue }
            // Taken out, not copied: a copy would retain every field, and a change would copy its dictionaries.
            guard var state = types.removeValue(forKey: type) else { continue }
            guard state.pendingNonce == nil else {
                types[type] = state
                continue
            }
            let response = nextResponse(&state, type: type, snapshot: snapshot)
            let changed = state.takeLastChanged()
            types[type] = consume state
            guard let response else { continue }
            responses.append(response)
            if type == .cluster {
                warmed = true
                if let endpoints = warm(changed: changed, snapshot: snapshot) { responses.append(endpoints) }
            }
        }
        return responses.isEmpty ? .none : .send(responses)
    }

    // MARK: - Rules

    private mutating func validate(_ request: XDSRequest) -> Result<ResourceType, XDSError> {
        // An ACK repeats the names of the request before it (the serving edge hands over the same array
        // when the bytes are the same, which makes this comparison O(1)): they were checked then.
        if request.resourceNames != checkedNames {
            if let error = RequestValidation.check(names: request.resourceNames, count: request.resourceNames.count, limits: limits) {
                return .failure(error)
            }
            checkedNames = request.resourceNames
        }
        if let error = RequestValidation.check(node: request.node, limits: limits) { return .failure(error) }
        return RequestValidation.type(of: request.typeURL, allowed: allowedTypes)
    }

    private func updateSubscription(
        _ state: inout TypeState, type: ResourceType, names: [String], snapshot: ResourceSnapshot, isFirst: Bool
    ) {
        // An ACK repeats the names of the request before it: nothing to recompute (EDS ACKs name every
        // cluster, and come from every sidecar after every push).
        if !isFirst, names == state.requestedNames { return }
        state.requestedNames = names
        let requested = SortedNames(names)
        let wildcard: Bool
        if requested.contains("*") {
            wildcard = true
        } else if requested.isEmpty, type.allowsWildcard, isFirst || state.wildcard {
            wildcard = true  // legacy wildcard: stays until names are given
        } else {
            wildcard = false
        }
        var explicit = requested.removing("*")
        explicit.share(snapshot.names(type))
        if wildcard != state.wildcard {
            state.checkEverything = true
        }
        // Newly subscribed names are checked at the next response; when that checks everything (a first
        // request), listing them would only be thrown away.
        if !state.checkEverything {
            for name in explicit.subtracting(state.subscribed) { state.dirty.insert(name) }
        }
        if !wildcard {
            for name in state.subscribed.subtracting(explicit) {
                // Unsubscribed: the client forgot it; a later subscription is sent again.
                state.forget(name)
                state.nacked[name] = nil
            }
            if state.wildcard {
                for name in state.sent.names where !explicit.contains(name) {
                    state.forget(name)
                }
            }
        }
        state.subscribed = explicit
        state.wildcard = wildcard
    }

    /// The resource `name` (subscribed) should be at for this client now: the current one, or the ACKed
    /// one when the current version was NACKed.
    /// What the client should hold of `name` when the snapshot has `current`: the version it ACKed
    /// instead of one it refused.
    private func desiredResource(_ name: String, current: EncodedResource, _ state: TypeState) -> EncodedResource? {
        state.nacked[name] == current.version ? state.ackedResource(name) : current
    }

    /// The snapshot's names this stream subscribes to, in order, when walking the snapshot's sorted
    /// names is cheaper than sorting the subscription (wildcard, or a subscription to a good part of
    /// the snapshot); nil otherwise.
    private func inOrder(_ state: TypeState, type: ResourceType, snapshot: ResourceSnapshot) -> [String]? {
        let all = snapshot.names(type)
        return state.wildcard || state.subscribed.count * 4 > all.count ? all : nil
    }

    /// What this stream should hold of a full-state type now, in name order.
    private func desiredInOrder(_ state: TypeState, type: ResourceType, snapshot: ResourceSnapshot) -> [EncodedResource] {
        var desired: [EncodedResource] = []
        if let all = inOrder(state, type: type, snapshot: snapshot) {
            let localized = snapshot.localizedInOrder(type, for: locality)
            desired.reserveCapacity(state.wildcard ? all.count : state.subscribed.count)
            for (offset, name) in state.subscribedNames(in: all) {
                if let resource = desiredResource(name, current: localized[offset], state) { desired.append(resource) }
            }
        } else {
            for name in state.subscribed {
                guard let current = snapshot.resource(type, named: name, for: locality) else { continue }
                if let resource = desiredResource(name, current: current, state) { desired.append(resource) }
            }
        }
        return desired
    }

    /// A type whose responses carry only what changed: `name` is added to `toSend` (and to what the
    /// client holds) if the client should get it now; forgotten if it is gone.
    private func sendIfChanged(
        _ name: String, _ state: inout TypeState, _ toSend: inout [EncodedResource], type: ResourceType, snapshot: ResourceSnapshot
    ) {
        guard state.isSubscribed(name) else { return }
        guard let current = snapshot.resource(type, named: name, for: locality) else {
            if state.sent[name] != nil { state.setSent(name, nil) }  // gone: sent again if it comes back
            return
        }
        sendIfChanged(name, current: current, &state, &toSend)
    }

    /// `sendIfChanged` for a subscribed name the snapshot has as `current`.
    private func sendIfChanged(_ name: String, current: EncodedResource, _ state: inout TypeState, _ toSend: inout [EncodedResource]) {
        guard state.sent[name]?.version != current.version, state.nacked[name] != current.version else { return }
        toSend.append(current)
        state.setSent(name, current)
    }

    private mutating func nextResponse(_ state: inout TypeState, type: ResourceType, snapshot: ResourceSnapshot) -> OutboundResponse? {
        guard state.wildcard || !state.subscribed.isEmpty || !state.sent.isEmpty || !state.answered else { return nil }
        var candidates: Set<String>?
        if !state.checkEverything, let changed = snapshot.changedNames(type, after: state.checkedRevision) {
            candidates = changed.union(state.dirty)
        }
        state.checkedRevision = snapshot.revision
        state.dirty = []
        state.checkEverything = false

        var toSend: [EncodedResource] = []
        if type.isFullState {
            if let candidates, candidates.isEmpty, state.answered { return nil }
            let desired = desiredInOrder(state, type: type, snapshot: snapshot)
            var changed: [EncodedResource] = []
            for resource in desired where state.sent[resource.name]?.version != resource.version { changed.append(resource) }
            if changed.isEmpty, desired.count == state.sent.count, state.answered { return nil }
            toSend = desired
            state.reserveForFirstResponse(changed.count)
            for resource in changed { state.setSent(resource.name, resource) }
            if state.sent.count > desired.count {
                // The client holds some the snapshot (or its subscription) no longer has.
                let kept = Set(desired.lazy.map(\.name))
                for name in state.sent.names where !kept.contains(name) { state.setSent(name, nil) }
            }
            state.lastChanged = changed.map(\.name)
        } else {
            if let candidates {
                for name in candidates.sorted() { sendIfChanged(name, &state, &toSend, type: type, snapshot: snapshot) }
            } else if let all = inOrder(state, type: type, snapshot: snapshot) {
                // Everything, in the snapshot's order (no sort per stream); then what the client holds that
                // the snapshot no longer has.
                state.reserveForFirstResponse(state.wildcard ? all.count : min(all.count, state.subscribed.count))
                let localized = snapshot.localizedInOrder(type, for: locality)
                let heldBefore = !state.sent.isEmpty
                for (offset, name) in state.subscribedNames(in: all) {
                    sendIfChanged(name, current: localized[offset], &state, &toSend)
                }
                // (A client that held nothing holds only what the walk just took from the snapshot.)
                if heldBefore {
                    let gone = state.sent.names.filter { state.isSubscribed($0) && snapshot.resource(type, named: $0) == nil }
                    for name in gone { state.setSent(name, nil) }
                }
            } else {
                for name in Set(state.subscribed).union(state.sent.names).sorted() {
                    sendIfChanged(name, &state, &toSend, type: type, snapshot: snapshot)
                }
            }
            // A first request for names that do not exist yet still gets an (empty) answer, so clients
            // waiting on their initial fetch are not held up.
            guard !toSend.isEmpty || !state.answered else { return nil }
        }
        nonceCounter += 1
        let versionInfo = EncodedResource.hex(state.sentDigest)
        state.pendingNonce = String(nonceCounter)
        state.lastNonce = state.pendingNonce
        state.sentVersionInfo = versionInfo
        state.responseCount += 1
        state.answered = true
        return OutboundResponse(type: type, versionInfo: versionInfo, nonce: String(nonceCounter), resources: toSend)
    }

    /// Warming: every cluster just sent (`changed`) gets its load assignment sent again, right after it.
    private mutating func warm(changed: [String], snapshot: ResourceSnapshot) -> OutboundResponse? {
        guard var endpoints = types.removeValue(forKey: .endpoint) else { return nil }
        for (_, name) in endpoints.subscribedNames(in: changed) where endpoints.sent[name] != nil {
            endpoints.setSent(name, nil)
            endpoints.dirty.insert(name)
        }
        defer { types[.endpoint] = endpoints }
        guard endpoints.pendingNonce == nil else { return nil }
        return nextResponse(&endpoints, type: .endpoint, snapshot: snapshot)
    }
}
