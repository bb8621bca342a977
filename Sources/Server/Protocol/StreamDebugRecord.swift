/// What one stream holds, as `/debug/clients` and `legation status` show it: made by the stream's
/// machine when asked (`debugRecord(current:)`), so nothing outside a stream stores or copies machines.
public struct StreamDebugRecord: Sendable, Equatable {
    /// One resource type of the stream. Field names are a stable interface for operators' scripts.
    public struct TypeRecord: Codable, Sendable, Equatable {
        public var type: String
        public var wildcard: Bool
        /// Subscribed names (at most 100 listed; `subscribedCount` has them all).
        public var subscribed: [String]
        public var subscribedCount: Int
        public var sentVersion: String
        public var ackedVersion: String
        public var pendingNonce: String?
        public var responses: Int
        public var acks: Int
        public var nacks: Int
        public var lastNack: String?
        /// Resources the client holds whose version is not the current one for it (0: in sync).
        public var outOfSync: Int
    }

    public var node: ClientNode?
    public var staleNonces: Int
    /// In push order (CDS, EDS, LDS, RDS).
    public var types: [TypeRecord]

    /// The record of one type, if the stream has asked for it.
    public func type(_ type: ResourceType) -> TypeRecord? { types.first { $0.type == type.shortName } }
}

extension SotWStreamStateMachine {
    /// This stream as `/debug/clients` shows it, compared with `snapshot` (what is current now).
    public func debugRecord(current snapshot: ResourceSnapshot) -> StreamDebugRecord {
        let records = types.sorted { $0.key < $1.key }.map { type, state in
            StreamDebugRecord.TypeRecord(
                type: type.shortName, wildcard: state.wildcard, subscribed: Array(state.subscribed.names.prefix(100)),
                subscribedCount: state.subscribed.count, sentVersion: state.sentVersionInfo, ackedVersion: state.ackedVersionInfo,
                pendingNonce: state.pendingNonce, responses: state.responseCount, acks: state.ackCount, nacks: state.nackCount,
                lastNack: state.lastNack,
                outOfSync: state.acked.filter { snapshot.resource(type, named: $0.key, for: locality)?.version != $0.value.version }.count)
        }
        return StreamDebugRecord(node: node, staleNonces: staleNonces, types: records)
    }
}

extension DeltaStreamStateMachine {
    /// This stream as `/debug/clients` shows it, compared with `snapshot` (what is current now).
    public func debugRecord(current snapshot: ResourceSnapshot) -> StreamDebugRecord {
        let records = types.sorted { $0.key < $1.key }.map { type, state in
            let version = EncodedResource.hex(state.knownSum)
            return StreamDebugRecord.TypeRecord(
                type: type.shortName, wildcard: state.wildcard, subscribed: Array(state.subscribed.names.prefix(100)),
                subscribedCount: state.subscribed.count, sentVersion: version, ackedVersion: state.pendingNonce == nil ? version : "",
                pendingNonce: state.pendingNonce, responses: state.responseCount, acks: state.ackCount, nacks: state.nackCount,
                lastNack: state.lastNack,
                outOfSync: state.known.filter { snapshot.resource(type, named: $0.key, for: locality)?.version != $0.value }.count)
        }
        return StreamDebugRecord(node: node, staleNonces: staleNonces, types: records)
    }
}
