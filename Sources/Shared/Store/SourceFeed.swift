/// The reader's state machine for one source: turns snapshots and change-stream entries into updates of
/// the merged view, and decides when the source must be read again in full (design §2).
///
/// Rules, in one place:
/// - resume from the last entry; a gap (revision not the next one, generation changed, an entry it
///   cannot read, a record of an unknown schema version) asks for a resync, never a guess;
/// - a record that cannot be decoded is rejected (reported, to be counted) and the last good set of that
///   service is kept;
/// - nothing is deleted unless the writer's canary for the current generation is present: a source whose
///   data was lost, or whose writer is still listing, keeps its last known endpoints;
/// - an explicit removal (tombstone) drains everything.
public struct SourceFeed: Sendable {
    /// A record the feed refused, with the model's reason.
    public struct Rejection: Sendable, CustomStringConvertible {
        public var field: String
        public var error: ModelError
        public var description: String { "\(field): \(error)" }
    }

    /// What applying a snapshot or a batch of changes did.
    public struct Outcome: Sendable {
        public var updates: [EndpointChange] = []
        public var rejections: [Rejection] = []
        /// Parts of records that were ignored while the rest was applied (a failover policy that does
        /// not parse), with why.
        public var ignored: [Rejection] = []
        /// Set when the source must be read again in full; the reason, for logs and metrics.
        public var resyncReason: String?
        /// When the writer published the newest record applied from the change stream (not from a
        /// snapshot, whose records may be old): the reader's lag is now minus this.
        public var newestPublishedAtUnixMilliseconds: Int64?
    }

    public let source: SourceCluster
    public private(set) var services: [ServiceKey: EndpointSet] = [:]
    /// nil before the first snapshot, or while the source has no data.
    public private(set) var generation: String?
    public private(set) var revision: UInt64 = 0
    public private(set) var cursor: StreamCursor = .start
    /// The writer's canary for `generation` has been seen: deletions are trusted.
    public private(set) var isSynced = false
    public private(set) var isRemoved = false
    public private(set) var heartbeat: Heartbeat?
    public private(set) var hasSnapshot = false

    public init(source: SourceCluster) {
        self.source = source
    }

    /// Applies a full read of the source.
    public mutating func apply(_ snapshot: SourceSnapshot) -> Outcome {
        var outcome = Outcome()
        hasSnapshot = true
        heartbeat = snapshot.heartbeat
        generation = snapshot.generation
        revision = snapshot.revision
        cursor = snapshot.cursor
        isRemoved = snapshot.removed
        if snapshot.removed {
            outcome.updates = services.keys.sorted().map(EndpointChange.remove)
            services = [:]
            isSynced = false
            return outcome
        }
        isSynced = snapshot.canary != nil && snapshot.canary?.generation == snapshot.generation

        var present = Set<ServiceKey>()
        // A full read (a cold start's thousands of records) is decoded on every core, then applied in order.
        let source = self.source
        let decoded = snapshot.records.sorted(by: { $0.key < $1.key }).concurrentMap(minimumPerWorker: 128) {
            Self.decode(put: $0.key, bytes: $0.value, source: source)
        }
        for record in decoded {
            if let key = apply(record, into: &outcome, fromStream: false) { present.insert(key) }
        }
        outcome.resyncReason = nil  // this is the resync: a record it cannot read stays rejected
        if isSynced {
            for key in services.keys.sorted() where !present.contains(key) {
                services[key] = nil
                outcome.updates.append(.remove(key))
            }
        }
        return outcome
    }

    /// Applies change-stream entries in order. Stops at the first entry that is not the next one and
    /// asks for a resync; the updates before it stand.
    public mutating func apply(_ changes: [StoreChange]) -> Outcome {
        var outcome = Outcome()
        for change in changes {
            guard change.generation == generation else {
                outcome.resyncReason = "generation changed from \(generation ?? "none") to \(change.generation)"
                return outcome
            }
            guard change.revision == revision + 1 else {
                outcome.resyncReason =
                    change.revision <= revision
                    ? "revision went back from \(revision) to \(change.revision)"
                    : "gap: revision \(change.revision) after \(revision) (stream trimmed)"
                return outcome
            }
            revision = change.revision
            cursor = change.cursor
            switch change.kind {
            case .put(let field, let bytes):
                apply(Self.decode(put: field, bytes: bytes, source: source), into: &outcome, fromStream: true)
                if outcome.resyncReason != nil { return outcome }
            case .delete(let field):
                // Before the canary, deletions wait for it: the resync it triggers settles them.
                guard isSynced, let key = try? ServiceKey(parsing: field), services[key] != nil else { continue }
                services[key] = nil
                outcome.updates.append(.remove(key))
            case .synced:
                if !isSynced {
                    outcome.resyncReason = "canary set: reading the source in full to settle deletions"
                    return outcome
                }
            case .removed:
                outcome.resyncReason = "source removed"
                return outcome
            case .malformed(let reason):
                outcome.resyncReason = "unreadable stream entry \(change.cursor): \(reason)"
                return outcome
            }
        }
        return outcome
    }

    /// One record, decoded apart from the feed (so that a snapshot's records decode on every core).
    private struct DecodedRecord: Sendable {
        var field: String
        var key: ServiceKey?
        var result: Result<(set: EndpointSet, publishedAt: Int64, ignoredFailover: ModelError?), ModelError>
    }

    private static func decode(put field: String, bytes: [UInt8], source: SourceCluster) -> DecodedRecord {
        let key: ServiceKey
        do {
            key = try ServiceKey(parsing: field)
        } catch {
            return DecodedRecord(field: field, key: nil, result: .failure(error))
        }
        do {
            let (set, publishedAt, ignoredFailover) = try EndpointSet.decode(
                recordBytes: bytes, expectedSource: source, expectedService: key)
            return DecodedRecord(field: field, key: key, result: .success((set, publishedAt, ignoredFailover)))
        } catch {
            return DecodedRecord(field: field, key: key, result: .failure(error))
        }
    }

    /// Applies one decoded record to `services` (last good kept on error). - Returns: its key, if the
    /// field names a service.
    @discardableResult
    private mutating func apply(_ record: DecodedRecord, into outcome: inout Outcome, fromStream: Bool) -> ServiceKey? {
        guard let key = record.key else {
            if case .failure(let error) = record.result { outcome.rejections.append(Rejection(field: record.field, error: error)) }
            return nil
        }
        switch record.result {
        case .success(let (set, publishedAt, ignoredFailover)):
            if fromStream { outcome.newestPublishedAtUnixMilliseconds = max(outcome.newestPublishedAtUnixMilliseconds ?? 0, publishedAt) }
            if let ignoredFailover { outcome.ignored.append(Rejection(field: record.field, error: ignoredFailover)) }
            if services[key] != set {
                services[key] = set
                outcome.updates.append(.upsert(set))
            }
        case .failure(let error):
            outcome.rejections.append(Rejection(field: record.field, error: error))
            if error.code == .unsupportedSchema {
                outcome.resyncReason = "record of \(record.field) has an unsupported schema version"
            }
        }
        return key
    }
}
