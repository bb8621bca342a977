import Logging
import Metrics
import NIOCore
import NIOPosix
import Shared
import SwiftProtobuf

/// The Redis store: the layout of `RedisKeys`, the rules of `RedisScripts`, over one server, the primary
/// Redis Sentinel names, or a Redis Cluster (`RedisConfiguration.Topology`).
///
/// Commands go over one connection per server (pipelined); waiting for changes uses connections of its
/// own, so a reader waiting never delays a write or a snapshot: one blocking `XREAD` over every source
/// on one server, or one per source under Redis Cluster, whose sources live in different slots
/// (`ClusterStreamTails`). Every call fails with a `StoreError` and leaves the caller's state alone;
/// reconnecting (and finding the primary again) is automatic.
public final class RedisEndpointStore: EndpointStore {
    public struct Options: Sendable {
        /// Change-stream entries kept per source (`XADD MAXLEN ~`); a reader further behind resyncs.
        public var streamMaxLength: Int = 10_000
        public init() {}
    }

    private let commands: any RedisCommandRunner
    /// How to wait for changes: a blocking connection to the one server, or a read per source.
    private enum Tail {
        case single(RedisClient)
        case perSource(ClusterStreamTails)
    }
    private let tail: Tail
    private let options: Options
    private let malformedEntries: Counter

    public init(
        _ configuration: RedisConfiguration,
        options: Options = Options(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "legation.redis"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.options = options
        let malformedEntries = Counter(label: "legation_redis_malformed_replies_total", factory: metricsFactory)
        self.malformedEntries = malformedEntries
        if case .cluster = configuration.topology {
            let cluster = RedisClusterClient(configuration, group: group, logger: logger, metricsFactory: metricsFactory)
            self.commands = cluster
            self.tail = .perSource(
                ClusterStreamTails { source, cursor, limit, block in
                    let key = RedisKeys(source).changes
                    let reply = try Self.check(
                        try await cluster.send(
                            [
                                "XREAD", "COUNT", RedisArgument(max(1, limit)), "BLOCK", RedisArgument(max(1, block.milliseconds)),
                                "STREAMS", RedisArgument(key),
                                RedisArgument(cursor.description)
                            ],
                            key: key, timeout: block + configuration.commandTimeout, dedicated: "tail-\(source.name)"))
                    return try Self.entries(reply, keys: [key: source], malformed: malformedEntries)[source] ?? []
                })
        } else {
            var blockingConfiguration = configuration
            blockingConfiguration.clientName = configuration.clientName + "-tail"
            self.commands = RedisClient(configuration, group: group, logger: logger, metricsFactory: metricsFactory)
            self.tail = .single(RedisClient(blockingConfiguration, group: group, logger: logger, metricsFactory: metricsFactory))
        }
    }

    /// The command client, for operator tools and tests that need raw commands (under Redis Cluster a
    /// `RedisClusterClient`, which routes each by its key).
    public var client: any RedisCommandRunner { commands }

    /// Grows whenever a connection to Redis was (re)established (see `RedisCommandRunner.session`).
    public var session: UInt64 { commands.session }

    /// Closes every connection and stops waiting for changes.
    public func close() async {
        await commands.close()
        switch tail {
        case .single(let blocking): await blocking.close()
        case .perSource(let tails): tails.close()
        }
    }

    // MARK: EndpointStoreWriter

    public func acquireLease(source: SourceCluster, holder: String, ttl: Duration) async throws -> Lease? {
        guard !holder.isEmpty, !holder.contains(" "), DNSName.isToken(holder) else {
            throw StoreError(
                .configuration, "lease holder \(String(reflecting: holder.prefix(80))) must be a non-empty token without spaces")
        }
        let keys = RedisKeys(source)
        let reply = try check(
            await commands.evaluate(
                RedisScripts.acquireLease, keys: [keys.lease, keys.epoch, keys.removed],
                arguments: [RedisArgument(holder), RedisArgument(ttl.milliseconds)]))
        guard let values = reply.array, values.count == 2, let flag = values[0].integer else {
            throw unexpected(reply, "acquiring the lease")
        }
        guard flag == 1 else { return nil }
        guard let epoch = values[1].string.flatMap({ UInt64($0) }) else { throw unexpected(reply, "acquiring the lease") }
        _ = try check(await commands.send(["SADD", RedisArgument(RedisKeys.sources), RedisArgument(source.name)]))
        return Lease(source: source, holder: holder, epoch: epoch)
    }

    public func renewLease(_ lease: Lease, ttl: Duration) async throws -> Bool {
        let reply = try check(
            await commands.evaluate(
                RedisScripts.renewLease, keys: [RedisKeys(lease.source).lease],
                arguments: [RedisArgument("\(lease.holder) \(lease.epoch)"), RedisArgument(ttl.milliseconds)]))
        return reply.integer == 1
    }

    public func releaseLease(_ lease: Lease) async throws {
        _ = try check(
            await commands.evaluate(
                RedisScripts.releaseLease, keys: [RedisKeys(lease.source).lease],
                arguments: [RedisArgument("\(lease.holder) \(lease.epoch)")]))
    }

    public func write(_ writes: [StoreWrite], lease: Lease) async throws -> WriteResult {
        let keys = RedisKeys(lease.source)
        var arguments: [RedisArgument] = [
            RedisArgument(lease.epoch), RedisArgument(options.streamMaxLength),
            RedisArgument(WallClock.newGeneration())
        ]
        arguments.reserveCapacity(3 + 4 * writes.count)
        let now = Int64(WallClock.milliseconds())
        for write in writes {
            switch write {
            case .put(let set):
                guard set.source == lease.source else {
                    throw StoreError(.configuration, "\(set) written under the lease of \(lease.source)")
                }
                let record = set.recordBytes(epoch: lease.epoch, publishedAtUnixMilliseconds: now)
                arguments += [
                    "put", RedisArgument(set.service.description), RedisArgument(RedisKeys.hashText(set.versionHash)), RedisArgument(record)
                ]
            case .delete(let service):
                arguments += ["del", RedisArgument(service.description), "", ""]
            }
        }
        let reply = try check(
            await commands.evaluate(
                RedisScripts.write, keys: [keys.epoch, keys.meta, keys.services, keys.hashes, keys.changes],
                arguments: arguments))
        guard let values = reply.array, values.count == 2 + writes.count, let generation = values[0].string,
            let created = values[1].integer
        else { throw unexpected(reply, "writing") }
        let outcomes = values.dropFirst(2).map { value -> WriteOutcome in
            let revision = UInt64(value.integer ?? 0)
            return revision == 0 ? .unchanged : .written(revision: revision)
        }
        return WriteResult(outcomes: outcomes, generation: generation, createdGeneration: created == 1)
    }

    public func markSynced(generation: String, serviceCount: Int, lease: Lease) async throws {
        var canary = Legation_Store_V1_SyncCanaryRecord()
        canary.schemaVersion = currentSchemaVersion
        canary.sourceCluster = lease.source.name
        canary.generation = generation
        canary.epoch = lease.epoch
        canary.holder = lease.holder
        canary.syncedAtUnixMs = Int64(WallClock.milliseconds())
        canary.serviceCount = UInt64(serviceCount)
        let keys = RedisKeys(lease.source)
        _ = try check(
            await commands.evaluate(
                RedisScripts.markSynced, keys: [keys.epoch, keys.meta, keys.services, keys.canary, keys.changes],
                arguments: [
                    RedisArgument(lease.epoch), RedisArgument(generation), RedisArgument(try canary.serializedBytes()),
                    RedisArgument(options.streamMaxLength)
                ]))
    }

    public func heartbeat(lease: Lease, ttl: Duration) async throws {
        var record = Legation_Store_V1_HeartbeatRecord()
        record.schemaVersion = currentSchemaVersion
        record.holder = lease.holder
        record.epoch = lease.epoch
        record.sentAtUnixMs = Int64(WallClock.milliseconds())
        let keys = RedisKeys(lease.source)
        _ = try check(
            await commands.evaluate(
                RedisScripts.heartbeat, keys: [keys.epoch, keys.heartbeat],
                arguments: [RedisArgument(lease.epoch), RedisArgument(try record.serializedBytes()), RedisArgument(ttl.milliseconds)]))
    }

    public func storedHashes(source: SourceCluster) async throws -> [ServiceKey: UInt64] {
        let reply = try check(await commands.send(["HGETALL", RedisArgument(RedisKeys(source).hashes)]))
        guard let values = reply.array, values.count % 2 == 0 else { throw unexpected(reply, "reading hashes") }
        var hashes: [ServiceKey: UInt64] = [:]
        for index in stride(from: 0, to: values.count, by: 2) {
            guard let field = values[index].string, let key = try? ServiceKey(parsing: field),
                let hash = values[index + 1].string.flatMap({ UInt64($0, radix: 16) })
            else { continue }
            hashes[key] = hash
        }
        return hashes
    }

    // MARK: EndpointStoreReader

    public func sources() async throws -> Set<SourceCluster> {
        let reply = try check(await commands.send(["SMEMBERS", RedisArgument(RedisKeys.sources)]))
        guard let values = reply.array else { throw unexpected(reply, "listing sources") }
        return Set(values.compactMap { $0.string.flatMap { try? SourceCluster($0) } })
    }

    public func heartbeats(of sources: [SourceCluster]) async throws -> [SourceCluster: Heartbeat] {
        guard !sources.isEmpty else { return [:] }
        var commandList: [RedisCommand] = []
        for source in sources {
            let key = RedisKeys(source).heartbeat
            commandList.append(RedisCommand(key: key, ["GET", RedisArgument(key)]))
            commandList.append(RedisCommand(key: key, ["PTTL", RedisArgument(key)]))
        }
        let replies = try await commands.pipeline(commandList, timeout: nil)
        var result: [SourceCluster: Heartbeat] = [:]
        for (offset, source) in sources.enumerated() {
            let value = try check(replies[2 * offset])
            guard let bytes = value.bytes, let record = try? Legation_Store_V1_HeartbeatRecord(serializedBytes: bytes) else { continue }
            result[source] = Heartbeat(
                holder: record.holder, epoch: record.epoch, sentAtUnixMilliseconds: record.sentAtUnixMs,
                remainingMilliseconds: max(0, replies[2 * offset + 1].integer ?? 0))
        }
        return result
    }

    public func snapshot(of source: SourceCluster) async throws -> SourceSnapshot {
        let keys = RedisKeys(source)
        let reply = try check(
            await commands.evaluate(
                RedisScripts.snapshot,
                keys: [keys.meta, keys.services, keys.changes, keys.canary, keys.heartbeat, keys.removed], arguments: []))
        guard let values = reply.array, values.count == 8, let revision = values[1].string.flatMap({ UInt64($0) }),
            let cursor = values[2].string.flatMap({ StreamCursor($0) }), let flat = values[3].array, flat.count % 2 == 0
        else { throw unexpected(reply, "reading a snapshot of \(source)") }
        var records: [String: [UInt8]] = [:]
        records.reserveCapacity(flat.count / 2)
        for index in stride(from: 0, to: flat.count, by: 2) {
            guard let field = flat[index].string, let record = flat[index + 1].bytes else { continue }
            records[field] = record
        }
        var snapshot = SourceSnapshot(
            source: source, generation: values[0].string, revision: revision, cursor: cursor, records: records,
            canary: nil, canaryError: nil, heartbeat: nil, removed: values[7].integer == 1)
        if let bytes = values[4].bytes {
            do {
                let record = try Legation_Store_V1_SyncCanaryRecord(serializedBytes: bytes)
                guard record.schemaVersion == currentSchemaVersion else {
                    throw StoreError(.badRecord, "canary schema version \(record.schemaVersion.rawValue)")
                }
                snapshot.canary = SyncCanary(
                    generation: record.generation, epoch: record.epoch, holder: record.holder,
                    syncedAtUnixMilliseconds: record.syncedAtUnixMs, serviceCount: record.serviceCount)
            } catch {
                snapshot.canaryError = "unreadable canary of \(source): \(error)"
            }
        }
        if let bytes = values[5].bytes, let record = try? Legation_Store_V1_HeartbeatRecord(serializedBytes: bytes) {
            snapshot.heartbeat = Heartbeat(
                holder: record.holder, epoch: record.epoch, sentAtUnixMilliseconds: record.sentAtUnixMs,
                remainingMilliseconds: values[6].integer ?? 0)
        }
        return snapshot
    }

    public func changes(after cursors: [SourceCluster: StreamCursor], limit: Int, wait: Duration?) async throws
        -> [SourceCluster: [StoreChange]]
    {
        guard !cursors.isEmpty else { return [:] }
        let ordered = cursors.sorted { $0.key < $1.key }
        let byKey = Dictionary(uniqueKeysWithValues: ordered.map { (RedisKeys($0.key).changes, $0.key) })
        switch tail {
        case .single(let blocking):
            var command: [RedisArgument] = ["XREAD", "COUNT", RedisArgument(max(1, limit))]
            let client: any RedisCommandRunner
            var timeout: Duration?
            if let wait, wait > .zero {
                command += ["BLOCK", RedisArgument(max(1, wait.milliseconds))]
                client = blocking
                timeout = wait + blocking.configuration.commandTimeout
            } else {
                client = commands
            }
            command.append("STREAMS")
            command += ordered.map { RedisArgument(RedisKeys($0.key).changes) }
            command += ordered.map { RedisArgument($0.value.description) }
            return try Self.entries(
                try Self.check(await client.send(command, key: nil, timeout: timeout)), keys: byKey, malformed: malformedEntries)
        case .perSource(let tails):
            // What is there already comes back at once: one XREAD per source (each in its own slot),
            // pipelined by node. Only when there is nothing does the call wait on the blocking reads.
            let reads = ordered.map { source, cursor in
                let key = RedisKeys(source).changes
                return RedisCommand(
                    key: key,
                    ["XREAD", "COUNT", RedisArgument(max(1, limit)), "STREAMS", RedisArgument(key), RedisArgument(cursor.description)])
            }
            var result: [SourceCluster: [StoreChange]] = [:]
            for reply in try await commands.pipeline(reads, timeout: nil) {
                result.merge(try Self.entries(try Self.check(reply), keys: byKey, malformed: malformedEntries)) { $1 }
            }
            guard result.isEmpty, let wait, wait > .zero else { return result }
            return try await tails.changes(after: cursors, limit: limit, wait: wait)
        }
    }

    /// An `XREAD` reply: `[[key, [entry, …]], …]` or null, by source.
    private static func entries(_ reply: RESPValue, keys: [String: SourceCluster], malformed: Counter) throws(StoreError) -> [SourceCluster:
        [StoreChange]]
    {
        if reply.isNull { return [:] }
        guard let streams = reply.array else { throw unexpected(reply, "reading changes", malformed: malformed) }
        var result: [SourceCluster: [StoreChange]] = [:]
        for stream in streams {
            guard let pair = stream.array, pair.count == 2, let key = pair[0].string, let source = keys[key], let entries = pair[1].array
            else { throw unexpected(reply, "reading changes", malformed: malformed) }
            result[source] = entries.map(Self.change(from:))
        }
        return result
    }

    // MARK: EndpointStoreAdministration

    public func removeSource(_ source: SourceCluster) async throws {
        let keys = RedisKeys(source)
        _ = try check(
            await commands.evaluate(
                RedisScripts.removeSource,
                keys: [
                    keys.meta, keys.services, keys.hashes, keys.changes, keys.canary, keys.heartbeat, keys.lease, keys.removed, keys.epoch
                ],
                arguments: [RedisArgument(options.streamMaxLength)]))
        _ = try check(await commands.send(["SREM", RedisArgument(RedisKeys.sources), RedisArgument(source.name)]))
    }

    // MARK: Replies

    /// Decodes one stream entry `[id, [field, value, ...]]`; anything unexpected becomes `.malformed`.
    static func change(from entry: RESPValue) -> StoreChange {
        guard let parts = entry.array, parts.count == 2, let cursor = parts[0].string.flatMap({ StreamCursor($0) }),
            let flat = parts[1].array, flat.count % 2 == 0
        else {
            return StoreChange(cursor: .start, revision: 0, generation: "", kind: .malformed("entry is not [id, fields]"))
        }
        var fields: [String: RESPValue] = [:]
        for index in stride(from: 0, to: flat.count, by: 2) {
            if let name = flat[index].string { fields[name] = flat[index + 1] }
        }
        guard let revision = fields["rev"]?.string.flatMap({ UInt64($0) }), let generation = fields["gen"]?.string,
            let op = fields["op"]?.string
        else {
            return StoreChange(cursor: cursor, revision: 0, generation: "", kind: .malformed("entry lacks rev, gen or op"))
        }
        let kind: StoreChange.Kind
        switch (op, fields["svc"]?.string, fields["rec"]?.bytes) {
        case ("put", let service?, let record?): kind = .put(service: service, record: record)
        case ("del", let service?, _): kind = .delete(service: service)
        case ("synced", _, _): kind = .synced
        case ("removed", _, _): kind = .removed
        default: kind = .malformed("unknown op \(String(reflecting: String(op.prefix(32)))) or missing fields")
        }
        return StoreChange(cursor: cursor, revision: revision, generation: generation, kind: kind)
    }

    /// Turns Redis error replies into `StoreError`s.
    private func check(_ reply: RESPValue) throws(StoreError) -> RESPValue {
        try Self.check(reply)
    }

    private static func check(_ reply: RESPValue) throws(StoreError) -> RESPValue {
        guard case .error(let message) = reply else { return reply }
        if message.contains("LEGATION_STALE_EPOCH") { throw StoreError(.staleEpoch, message) }
        if message.contains("LEGATION_NO_LEASE") { throw StoreError(.noLease, message) }
        if message.contains("LEGATION_GENERATION_CHANGED") { throw StoreError(.generationChanged, message) }
        if message.hasPrefix("NOPERM") || message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") {
            throw StoreError(.authentication, message)
        }
        throw StoreError(.protocolError, "Redis answered: \(message)")
    }

    private func unexpected(_ reply: RESPValue, _ doing: String) -> StoreError {
        Self.unexpected(reply, doing, malformed: malformedEntries)
    }

    private static func unexpected(_ reply: RESPValue, _ doing: String, malformed: Counter) -> StoreError {
        malformed.increment()
        return StoreError(.protocolError, "unexpected reply while \(doing): \(String(describing: reply).prefix(200))")
    }
}
