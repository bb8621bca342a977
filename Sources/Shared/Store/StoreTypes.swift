/// The right to write one source's data: who holds it and the fencing epoch that every write carries.
/// Epochs only grow, even across a loss of Redis data, so a deposed writer can never write again.
public struct Lease: Hashable, Sendable, CustomStringConvertible {
    public let source: SourceCluster
    public let holder: String
    public let epoch: UInt64

    public init(source: SourceCluster, holder: String, epoch: UInt64) {
        self.source = source
        self.holder = holder
        self.epoch = epoch
    }

    public var description: String { "\(source) lease of \(holder) at epoch \(epoch)" }
}

/// A position in a source's change stream (a Redis stream entry id `ms-seq`).
public struct StreamCursor: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let milliseconds: UInt64
    public let sequence: UInt64

    public init(milliseconds: UInt64, sequence: UInt64) {
        self.milliseconds = milliseconds
        self.sequence = sequence
    }

    /// Before every entry.
    public static let start = StreamCursor(milliseconds: 0, sequence: 0)

    /// Parses `ms-seq`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        self.init(milliseconds: ms, sequence: seq)
    }

    public var description: String { "\(milliseconds)-\(sequence)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.milliseconds, lhs.sequence) < (rhs.milliseconds, rhs.sequence)
    }
}

/// What a write did.
public enum WriteOutcome: Hashable, Sendable {
    /// Written at this source revision.
    case written(revision: UInt64)
    /// The stored content already had this hash (or the deleted service was absent): nothing written.
    case unchanged
}

/// The answer to a batch of writes.
public struct WriteResult: Hashable, Sendable {
    /// One outcome per write, in order.
    public var outcomes: [WriteOutcome]
    /// The source's data generation after the writes.
    public var generation: String
    /// True when this batch created the generation: the source's data was empty (first write ever, or
    /// Redis lost its data). A writer that had published before must then republish everything.
    public var createdGeneration: Bool

    public init(outcomes: [WriteOutcome], generation: String, createdGeneration: Bool) {
        self.outcomes = outcomes
        self.generation = generation
        self.createdGeneration = createdGeneration
    }
}

/// One write of a batch.
public enum StoreWrite: Hashable, Sendable {
    case put(EndpointSet)
    case delete(ServiceKey)
}

/// The sync canary: the writer finished its initial list of this generation.
public struct SyncCanary: Hashable, Sendable {
    public var generation: String
    public var epoch: UInt64
    public var holder: String
    public var syncedAtUnixMilliseconds: Int64
    public var serviceCount: UInt64

    public init(generation: String, epoch: UInt64, holder: String, syncedAtUnixMilliseconds: Int64, serviceCount: UInt64) {
        self.generation = generation
        self.epoch = epoch
        self.holder = holder
        self.syncedAtUnixMilliseconds = syncedAtUnixMilliseconds
        self.serviceCount = serviceCount
    }
}

/// The writer's heartbeat, as stored; absent once its TTL ran out.
public struct Heartbeat: Hashable, Sendable {
    public var holder: String
    public var epoch: UInt64
    public var sentAtUnixMilliseconds: Int64
    /// Time left before it expires, as the store reports it.
    public var remainingMilliseconds: Int64

    public init(holder: String, epoch: UInt64, sentAtUnixMilliseconds: Int64, remainingMilliseconds: Int64) {
        self.holder = holder
        self.epoch = epoch
        self.sentAtUnixMilliseconds = sentAtUnixMilliseconds
        self.remainingMilliseconds = remainingMilliseconds
    }
}

/// Everything stored for one source, read atomically: the records and the stream position they
/// correspond to, so that reading the stream from `cursor` yields exactly the later changes.
public struct SourceSnapshot: Sendable {
    public var source: SourceCluster
    /// nil when the source has no data (never written, or lost).
    public var generation: String?
    public var revision: UInt64
    public var cursor: StreamCursor
    /// Raw records by service field (`namespace/name`); decoded (and rejected) by the reader.
    public var records: [String: [UInt8]]
    /// The canary, if present and decodable; `canaryError` says why one present could not be decoded.
    public var canary: SyncCanary?
    public var canaryError: String?
    public var heartbeat: Heartbeat?
    /// The source was removed explicitly: its endpoints are to be drained.
    public var removed: Bool

    public init(
        source: SourceCluster, generation: String?, revision: UInt64, cursor: StreamCursor, records: [String: [UInt8]],
        canary: SyncCanary?, canaryError: String?, heartbeat: Heartbeat?, removed: Bool
    ) {
        self.source = source
        self.generation = generation
        self.revision = revision
        self.cursor = cursor
        self.records = records
        self.canary = canary
        self.canaryError = canaryError
        self.heartbeat = heartbeat
        self.removed = removed
    }
}

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
