/// One entry of a source's change stream, decoded only as far as the store layer must.
public struct StoreChange: Sendable {
    public enum Kind: Sendable {
        /// A full endpoint set was written; its raw record.
        case put(service: String, record: [UInt8])
        /// A service was deleted.
        case delete(service: String)
        /// The writer finished its initial list (the canary was set).
        case synced
        /// The source was removed explicitly (a tombstone was set): drain it.
        case removed
        /// An entry the reader cannot use; the reason. Treated as a gap (resync).
        case malformed(String)
    }

    public var cursor: StreamCursor
    public var revision: UInt64
    public var generation: String
    public var kind: Kind

    public init(cursor: StreamCursor, revision: UInt64, generation: String, kind: Kind) {
        self.cursor = cursor
        self.revision = revision
        self.generation = generation
        self.kind = kind
    }
}
