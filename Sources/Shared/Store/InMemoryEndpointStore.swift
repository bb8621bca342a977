/// The embedded store: the same semantics as the Redis store (the contract suite runs against both),
/// inside one process. Used by the local demo, single-process installs and socket-free tests.
///
/// Nothing survives the process. Waiting readers are woken by every write; a cancelled wait returns
/// what is there.
public actor InMemoryEndpointStore: EndpointStore {
    struct Stored {
        var epochCounter: UInt64?
        var lease: (holder: String, epoch: UInt64, expiresAt: ContinuousClock.Instant)?
        var generation: String?
        var revision: UInt64 = 0
        var records: [String: (bytes: [UInt8], hash: UInt64)] = [:]
        var stream: [StoreChange] = []
        var canary: SyncCanary?
        var heartbeat: (value: Heartbeat, expiresAt: ContinuousClock.Instant)?
        var removed = false
    }

    private let streamMaxLength: Int
    var stored: [SourceCluster: Stored] = [:]
    var registered: Set<SourceCluster> = []
    private var lastCursor = StreamCursor.start
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0

    /// - Parameter streamMaxLength: change-stream entries kept per source; older ones are trimmed and
    ///   a reader behind them resyncs.
    public init(streamMaxLength: Int = 10_000) {
        self.streamMaxLength = max(1, streamMaxLength)
    }

    // MARK: EndpointStoreWriter

    public func acquireLease(source: SourceCluster, holder: String, ttl: Duration) -> Lease? {
        var state = stored[source] ?? Stored()
        let now = ContinuousClock.now
        if let lease = state.lease, lease.expiresAt > now {
            guard lease.holder == holder else { return nil }
            state.lease?.expiresAt = now + ttl
            stored[source] = state
            return Lease(source: source, holder: holder, epoch: lease.epoch)
        }
        let epoch = max((state.epochCounter ?? 0) + 1, WallClock.milliseconds())
        state.epochCounter = epoch
        state.lease = (holder, epoch, now + ttl)
        state.removed = false
        stored[source] = state
        registered.insert(source)
        return Lease(source: source, holder: holder, epoch: epoch)
    }

    public func renewLease(_ lease: Lease, ttl: Duration) -> Bool {
        guard let current = stored[lease.source]?.lease, current.holder == lease.holder, current.epoch == lease.epoch,
            current.expiresAt > .now
        else { return false }
        stored[lease.source]?.lease?.expiresAt = .now + ttl
        return true
    }

    public func releaseLease(_ lease: Lease) {
        guard let current = stored[lease.source]?.lease, current.holder == lease.holder, current.epoch == lease.epoch
        else { return }
        stored[lease.source]?.lease = nil
    }

    public func write(_ writes: [StoreWrite], lease: Lease) throws -> WriteResult {
        var state = try fenced(lease)
        let created = state.generation == nil
        let generation = state.generation ?? WallClock.newGeneration()
        state.generation = generation
        var outcomes: [WriteOutcome] = []
        for write in writes {
            switch write {
            case .put(let set):
                guard set.source == lease.source else {
                    throw StoreError(.configuration, "\(set) written under the lease of \(lease.source)")
                }
                let field = set.service.description
                if state.records[field]?.hash == set.versionHash {
                    outcomes.append(.unchanged)
                    continue
                }
                let bytes = set.recordBytes(epoch: lease.epoch, publishedAtUnixMilliseconds: Int64(WallClock.milliseconds()))
                state.records[field] = (bytes, set.versionHash)
                outcomes.append(.written(revision: append(.put(service: field, record: bytes), to: &state)))
            case .delete(let service):
                let field = service.description
                guard state.records.removeValue(forKey: field) != nil else {
                    outcomes.append(.unchanged)
                    continue
                }
                outcomes.append(.written(revision: append(.delete(service: field), to: &state)))
            }
        }
        stored[lease.source] = state
        wakeWaiters()
        return WriteResult(outcomes: outcomes, generation: generation, createdGeneration: created)
    }

    public func markSynced(generation: String, serviceCount: Int, lease: Lease) throws {
        var state = try fenced(lease)
        if let canary = state.canary, canary.generation == generation, canary.epoch == lease.epoch, state.generation == generation {
            return  // marked already by this writer for this generation: nothing changes
        }
        if state.generation == nil, state.records.isEmpty {
            state.generation = generation  // an empty source: the canary creates its generation
        }
        guard state.generation == generation else {
            throw StoreError(
                .generationChanged,
                "\(lease.source) has generation \(state.generation ?? "none"), not \(generation): its data was lost; republish")
        }
        state.canary = SyncCanary(
            generation: generation, epoch: lease.epoch, holder: lease.holder,
            syncedAtUnixMilliseconds: Int64(WallClock.milliseconds()), serviceCount: UInt64(serviceCount))
        _ = append(.synced, to: &state)
        stored[lease.source] = state
        wakeWaiters()
    }

    public func heartbeat(lease: Lease, ttl: Duration) throws {
        var state = try fenced(lease)
        let value = Heartbeat(
            holder: lease.holder, epoch: lease.epoch, sentAtUnixMilliseconds: Int64(WallClock.milliseconds()),
            remainingMilliseconds: ttl.milliseconds)
        state.heartbeat = (value, .now + ttl)
        stored[lease.source] = state
    }

    public func storedHashes(source: SourceCluster) -> [ServiceKey: UInt64] {
        var hashes: [ServiceKey: UInt64] = [:]
        for (field, record) in stored[source]?.records ?? [:] {
            if let key = try? ServiceKey(parsing: field) { hashes[key] = record.hash }
        }
        return hashes
    }

    // MARK: EndpointStoreReader

    public func sources() -> Set<SourceCluster> { registered }

    public func heartbeats(of sources: [SourceCluster]) -> [SourceCluster: Heartbeat] {
        var result: [SourceCluster: Heartbeat] = [:]
        for source in sources {
            guard let stored = stored[source]?.heartbeat, stored.expiresAt > .now else { continue }
            var heartbeat = stored.value
            heartbeat.remainingMilliseconds = (stored.expiresAt - .now).milliseconds
            result[source] = heartbeat
        }
        return result
    }

    public func snapshot(of source: SourceCluster) -> SourceSnapshot {
        let state = stored[source] ?? Stored()
        var heartbeat: Heartbeat?
        if let stored = state.heartbeat, stored.expiresAt > .now {
            heartbeat = stored.value
            heartbeat?.remainingMilliseconds = (stored.expiresAt - .now).milliseconds
        }
        return SourceSnapshot(
            source: source, generation: state.generation, revision: state.revision,
            cursor: state.stream.last?.cursor ?? .start, records: state.records.mapValues(\.bytes),
            canary: state.canary, canaryError: nil, heartbeat: heartbeat, removed: state.removed)
    }

    public func changes(after cursors: [SourceCluster: StreamCursor], limit: Int, wait: Duration?) async
        -> [SourceCluster: [StoreChange]]
    {
        let found = collect(after: cursors, limit: limit)
        guard found.isEmpty, let wait, wait > .zero else { return found }
        await waitForWrite(timeout: wait)
        return collect(after: cursors, limit: limit)
    }

    // MARK: EndpointStoreAdministration

    public func removeSource(_ source: SourceCluster) {
        let previous = stored[source] ?? Stored()
        var state = Stored()
        state.removed = true
        state.epochCounter = previous.epochCounter.map { $0 + 1 }  // fences off the last writer
        state.revision = previous.revision
        state.stream = previous.stream
        state.generation = previous.generation
        _ = append(.removed, to: &state)
        state.revision = 0
        state.generation = nil
        stored[source] = state
        registered.remove(source)
        wakeWaiters()
    }

    // MARK: Damage, for tests of the readers' defences

    private func fenced(_ lease: Lease) throws(StoreError) -> Stored {
        guard let state = stored[lease.source], let epoch = state.epochCounter else {
            throw StoreError(.noLease, "no epoch for \(lease.source): the lease was never taken or the data was lost")
        }
        guard epoch == lease.epoch else {
            throw StoreError(.staleEpoch, "writer epoch \(lease.epoch) for \(lease.source) is not the current epoch \(epoch)")
        }
        return state
    }

    func append(_ kind: StoreChange.Kind, to state: inout Stored) -> UInt64 {
        state.revision += 1
        let now = WallClock.milliseconds()
        lastCursor =
            now > lastCursor.milliseconds
            ? StreamCursor(milliseconds: now, sequence: 0)
            : StreamCursor(milliseconds: lastCursor.milliseconds, sequence: lastCursor.sequence + 1)
        state.stream.append(StoreChange(cursor: lastCursor, revision: state.revision, generation: state.generation ?? "", kind: kind))
        if state.stream.count > streamMaxLength { state.stream.removeFirst(state.stream.count - streamMaxLength) }
        return state.revision
    }

    private func collect(after cursors: [SourceCluster: StreamCursor], limit: Int) -> [SourceCluster: [StoreChange]] {
        var found: [SourceCluster: [StoreChange]] = [:]
        for (source, cursor) in cursors {
            guard let stream = stored[source]?.stream, let last = stream.last, last.cursor > cursor else { continue }
            let start = stream.firstIndex { $0.cursor > cursor } ?? stream.endIndex
            found[source] = Array(stream[start...].prefix(max(1, limit)))
        }
        return found
    }

    private func waitForWrite(timeout: Duration) async {
        let id = nextWaiter
        nextWaiter += 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.wake(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    waiters[id] = continuation
                }
            }
        } onCancel: {
            Task { await self.wake(id) }
        }
        timer.cancel()
    }

    private func wake(_ id: Int) {
        waiters.removeValue(forKey: id)?.resume()
    }

    func wakeWaiters() {
        let all = waiters
        waiters = [:]
        for continuation in all.values { continuation.resume() }
    }
}
