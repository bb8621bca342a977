import Logging
import Metrics
import NIOCore
import NIOPosix
import Shared

/// Redis Cluster: every command goes to the node that owns its key's hash slot, following the cluster as
/// it changes:
/// - `MOVED <slot> <node>`: the slot has a new owner; the command goes there and the slot map is read
///   again;
/// - `ASK <slot> <node>`: the key is being migrated; the command goes there once, after `ASKING`;
/// - `TRYAGAIN` (a multi-key command during a migration) and `CLUSTERDOWN` (an election): retried after
///   a short pause;
/// - a node that cannot be reached (dead, failing over): the slot map is read again from the others, and
///   the command retried until a replica has taken over or the attempts run out.
///
/// One connection per node for commands (a `RedisClient`, with its reconnect backoff), and dedicated
/// connections for blocking reads (`send(…, dedicated:)`), so a blocked `XREAD` never delays a write.
/// Every key of one source shares a hash tag, so each of the store's scripts touches one slot.
public actor RedisClusterClient: RedisCommandRunner {
    public let configuration: RedisConfiguration
    private let seeds: [RedisConfiguration.Address]
    private let group: any EventLoopGroup
    private let logger: Logger
    private let metricsFactory: any MetricsFactory
    private let redirects: Counter
    /// Owner of each slot, as an index into `owners`; -1 when unknown.
    private var slotOwners = [Int16](repeating: -1, count: RedisClusterClient.slotCount)
    private var owners: [RedisConfiguration.Address] = []
    private var clients: [RedisConfiguration.Address: RedisClient] = [:]
    private var dedicatedClients: [String: RedisClient] = [:]
    private let connections = ConnectionCount()
    private var refreshing: Task<Void, any Error>?
    private var lastRefresh: ContinuousClock.Instant?

    public static let slotCount = 16384
    /// How many times one command is redirected or retried before its error is returned.
    static let maximumAttempts = 12

    public init(
        _ configuration: RedisConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "legation.redis"), metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        if case .cluster(let seeds) = configuration.topology { self.seeds = seeds } else { self.seeds = [configuration.address] }
        self.group = group
        self.logger = logger
        self.metricsFactory = metricsFactory
        self.redirects = Counter(label: "legation_redis_cluster_redirects_total", factory: metricsFactory)
    }

    // MARK: Commands

    public func send(_ arguments: [RedisArgument], key: String?, timeout: Duration?) async throws -> RESPValue {
        try await send(arguments, key: key, timeout: timeout, dedicated: nil)
    }

    /// Sends one command; with `dedicated`, on a connection of its own to the owning node (one per
    /// purpose and node), for blocking commands.
    public func send(_ arguments: [RedisArgument], key: String?, timeout: Duration?, dedicated: String?) async throws -> RESPValue {
        let slot = key.map(Self.slot(of:))
        var target: RedisConfiguration.Address?
        var asking = false
        var lastError: (any Error)?
        for attempt in 0..<Self.maximumAttempts {
            let node: RedisConfiguration.Address
            if let target {
                node = target
            } else {
                do {
                    node = try await owner(of: slot)
                } catch {
                    lastError = error
                    try await pause(attempt)
                    continue
                }
            }
            let client = self.client(for: node, dedicated: dedicated)
            let reply: RESPValue
            do {
                reply = try await client.pipeline(asking ? [["ASKING"], arguments] : [arguments], timeout: timeout).last ?? .null
            } catch let error as StoreError where error.code == .unavailable {
                // The node is gone or failing over: read the map again from the others and retry.
                lastError = error
                target = nil
                asking = false
                try? await refreshMap(force: true)
                try await pause(attempt)
                continue
            }
            guard let message = reply.errorMessage else { return reply }
            if let redirect = Self.redirect(message) {
                redirects.increment()
                target = redirect.address
                asking = redirect.asking
                if !redirect.asking {
                    remember(slot: redirect.slot, owner: redirect.address)
                    scheduleRefresh()
                }
                continue
            }
            if message.hasPrefix("TRYAGAIN") || message.hasPrefix("CLUSTERDOWN") {
                lastError = StoreError(.unavailable, "Redis Cluster: \(message.prefix(200))")
                target = nil
                asking = false
                try await pause(attempt)
                continue
            }
            return reply
        }
        throw lastError
            ?? StoreError(.unavailable, "Redis Cluster did not settle on an owner for the command after \(Self.maximumAttempts) attempts")
    }

    /// Groups the commands by owning node, sends each group as one pipeline (the groups concurrently),
    /// and sends again one by one any that were redirected.
    public func pipeline(_ commands: [RedisCommand], timeout: Duration?) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        var groups: [RedisConfiguration.Address: [Int]] = [:]
        for (index, command) in commands.enumerated() {
            // A command whose owner is unknown is left out of the groups and sent on its own below.
            if let node = try? await owner(of: command.key.map(Self.slot(of:))) { groups[node, default: []].append(index) }
        }
        var replies = [RESPValue?](repeating: nil, count: commands.count)
        let batches = groups.map { (client(for: $0.key, dedicated: nil), $0.value) }
        let results = await withTaskGroup(of: ([Int], Result<[RESPValue], any Error>).self) { tasks in
            for (client, indices) in batches {
                tasks.addTask {
                    do {
                        return (indices, .success(try await client.pipeline(indices.map { commands[$0].arguments }, timeout: timeout)))
                    } catch {
                        return (indices, .failure(error))
                    }
                }
            }
            var collected: [([Int], Result<[RESPValue], any Error>)] = []
            for await result in tasks { collected.append(result) }
            return collected
        }
        for (indices, result) in results {
            switch result {
            case .success(let values):
                for (index, value) in zip(indices, values) {
                    let moved =
                        value.errorMessage.map { Self.redirect($0) != nil || $0.hasPrefix("TRYAGAIN") || $0.hasPrefix("CLUSTERDOWN") }
                        ?? false
                    if !moved { replies[index] = value }
                }
            case .failure:
                break  // each command of the group goes again on its own, and fails there if it must
            }
        }
        for index in replies.indices where replies[index] == nil {
            replies[index] = try await send(commands[index].arguments, key: commands[index].key, timeout: timeout)
        }
        return replies.map { $0 ?? .null }
    }

    public func evaluate(_ script: RedisScript, keys: [String], arguments: [RedisArgument]) async throws -> RESPValue {
        let tail = [RedisArgument(keys.count)] + keys.map { RedisArgument($0) } + arguments
        let reply = try await send(["EVALSHA", RedisArgument(script.sha)] + tail, key: keys.first, timeout: nil)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            return try await send(["EVAL", RedisArgument(script.source)] + tail, key: keys.first, timeout: nil)
        }
        return reply
    }

    /// Sends a command to every primary (`FLUSHALL`, `CLIENT KILL`: operator tools and tests).
    public func broadcast(_ arguments: [RedisArgument]) async throws -> [RESPValue] {
        try await refreshMap(force: false)
        var replies: [RESPValue] = []
        for node in Set(owners).sorted(by: { $0.description < $1.description }) {
            replies.append(try await client(for: node, dedicated: nil).send(arguments, key: nil, timeout: nil))
        }
        return replies
    }

    /// Connections its node clients made (dedicated blocking ones aside).
    public nonisolated var session: UInt64 { connections.value }

    public func close() async {
        for client in clients.values { await client.close() }
        for client in dedicatedClients.values { await client.close() }
        refreshing?.cancel()
    }

    /// The node that owns `key`'s slot now (reading the map first if it is unknown).
    public func node(for key: String) async throws -> RedisConfiguration.Address {
        try await owner(of: Self.slot(of: key))
    }

    // MARK: The slot map

    private func owner(of slot: Int?) async throws -> RedisConfiguration.Address {
        if let slot, slotOwners[slot] >= 0 { return owners[Int(slotOwners[slot])] }
        if slot == nil, let any = owners.first ?? seeds.first { return any }
        try await refreshMap(force: false)
        guard let slot else { return owners.first ?? seeds[0] }
        guard slotOwners[slot] >= 0 else {
            throw StoreError(.unavailable, "Redis Cluster: no node serves slot \(slot) (the cluster is not fully covered)")
        }
        return owners[Int(slotOwners[slot])]
    }

    private func remember(slot: Int, owner: RedisConfiguration.Address) {
        if let index = owners.firstIndex(of: owner) {
            slotOwners[slot] = Int16(index)
        } else {
            owners.append(owner)
            slotOwners[slot] = Int16(owners.count - 1)
        }
    }

    private func scheduleRefresh() {
        guard refreshing == nil else { return }
        Task { try? await self.refreshMap(force: true) }
    }

    /// Reads `CLUSTER SLOTS` from a known node or a seed. Concurrent callers share one read; `force`
    /// reads again even if the map is fresh (not more often than every 50 ms).
    private func refreshMap(force: Bool) async throws {
        if let refreshing { return try await refreshing.value }
        if !force, lastRefresh != nil, owners.count > 0 { return }
        if let lastRefresh, ContinuousClock.now - lastRefresh < .milliseconds(50) { return }
        let candidates = Array(Set(owners)).sorted { $0.description < $1.description } + seeds.filter { !owners.contains($0) }
        let task = Task { try await self.readMap(from: candidates) }
        refreshing = task
        defer { refreshing = nil }
        try await task.value
    }

    private func readMap(from candidates: [RedisConfiguration.Address]) async throws {
        var failures: [String] = []
        for node in candidates {
            do {
                let reply = try await client(for: node, dedicated: nil).send(["CLUSTER", "SLOTS"], key: nil, timeout: nil)
                let ranges = try Self.parseSlots(reply, queried: node)
                var fresh = [Int16](repeating: -1, count: Self.slotCount)
                var nodes: [RedisConfiguration.Address] = []
                for (range, owner) in ranges {
                    let index: Int
                    if let known = nodes.firstIndex(of: owner) {
                        index = known
                    } else {
                        nodes.append(owner)
                        index = nodes.count - 1
                    }
                    for slot in range { fresh[slot] = Int16(index) }
                }
                if nodes != owners {
                    logger.info("Redis Cluster map read", metadata: ["from": "\(node)", "primaries": "\(nodes.map(\.description))"])
                }
                owners = nodes
                slotOwners = fresh
                lastRefresh = .now
                return
            } catch {
                failures.append("\(node): \(error)")
            }
        }
        lastRefresh = .now
        throw StoreError(.unavailable, "cannot read the Redis Cluster map from any node: \(failures.joined(separator: "; ").prefix(600))")
    }

    private func client(for node: RedisConfiguration.Address, dedicated: String?) -> RedisClient {
        if let dedicated {
            let key = "\(dedicated)@\(node)"
            if let client = dedicatedClients[key] { return client }
            var settings = configuration.node(node)
            settings.clientName = configuration.clientName + "-" + dedicated
            let client = RedisClient(settings, group: group, logger: logger, metricsFactory: metricsFactory)
            dedicatedClients[key] = client
            return client
        }
        if let client = clients[node] { return client }
        let client = RedisClient(
            configuration.node(node), group: group, logger: logger, metricsFactory: metricsFactory, counting: connections)
        clients[node] = client
        return client
    }

    private func pause(_ attempt: Int) async throws {
        try await Task.sleep(for: Backoff.delay(attempt: attempt + 1, initial: .milliseconds(20), maximum: .milliseconds(500)))
    }

    // MARK: Parsing

    /// `MOVED 3999 127.0.0.1:6381` / `ASK 3999 127.0.0.1:6381`.
    static func redirect(_ message: String) -> (slot: Int, address: RedisConfiguration.Address, asking: Bool)? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]), (0..<slotCount).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]), (1...65_535).contains(port)
        else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (slot, RedisConfiguration.Address(host: host, port: port), parts[0] == "ASK")
    }

    /// `CLUSTER SLOTS`: `[[start, end, [host, port, id, …], replicas…], …]` → each range's primary. An
    /// empty host means the node that was asked.
    static func parseSlots(_ reply: RESPValue, queried: RedisConfiguration.Address) throws(StoreError)
        -> [(ClosedRange<Int>, RedisConfiguration.Address)]
    {
        if let message = reply.errorMessage { throw StoreError(.protocolError, "CLUSTER SLOTS: \(message.prefix(200))") }
        guard let entries = reply.array else {
            throw StoreError(.protocolError, "CLUSTER SLOTS answered \(String(describing: reply).prefix(200))")
        }
        var ranges: [(ClosedRange<Int>, RedisConfiguration.Address)] = []
        for entry in entries {
            guard let fields = entry.array, fields.count >= 3, let start = fields[0].integer, let end = fields[1].integer,
                0 <= start, start <= end, end < Int64(slotCount), let primary = fields[2].array, primary.count >= 2,
                let port = primary[1].integer, (1...65_535).contains(port)
            else {
                throw StoreError(
                    .protocolError, "CLUSTER SLOTS entry \(String(describing: entry).prefix(200)) is not [start, end, [host, port, …], …]")
            }
            let host = primary[0].string ?? ""
            let address =
                host.isEmpty || host == "?"
                ? RedisConfiguration.Address(host: queried.host, port: Int(port)) : .init(host: host, port: Int(port))
            ranges.append((Int(start)...Int(end), address))
        }
        return ranges
    }

    /// The hash slot of a key: CRC16 (XMODEM) of its hash tag (the part between the first `{` and the
    /// next `}`, when not empty), else of the whole key, modulo 16384.
    public static func slot(of key: String) -> Int {
        let bytes = Array(key.utf8)
        var hashed = bytes[...]
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")), let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")),
            close > open + 1
        {
            hashed = bytes[(open + 1)..<close]
        }
        var crc: UInt16 = 0
        for byte in hashed {
            crc = (crc << 8) ^ crc16Table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return Int(crc) % slotCount
    }

    private static let crc16Table: [UInt16] = (0..<256).map { index in
        var value = UInt16(index) << 8
        for _ in 0..<8 { value = value & 0x8000 != 0 ? (value << 1) ^ 0x1021 : value << 1 }
        return value
    }
}
