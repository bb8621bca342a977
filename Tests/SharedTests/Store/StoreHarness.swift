import LegationTestSupport
import Logging
import RedisStore

@testable import Shared

/// The stores the contract suite runs against.
enum StoreKind: String, CaseIterable, CustomStringConvertible, Sendable {
    /// The in-memory store; redis-server plain; over TLS; and as an ACL user (AUTH user password) with
    /// the default user switched off; through a sentinel that names the primary; and a three-shard Redis
    /// Cluster.
    case memory, redis, redisTLS, redisACL, redisSentinel, redisCluster
    var description: String { rawValue }
}

/// A store under test, with the means to damage it the way the world can.
struct StoreHarness: Sendable {
    let store: any EndpointStore
    let kind: StoreKind
    /// The Redis server behind the store (nil for the in-memory store and the HA topologies).
    let redis: RedisServer?
    /// The processes of a Sentinel set or a cluster, kept alive for the harness's lifetime.
    var topology: (any Sendable)?

    static func make(_ kind: StoreKind, streamMaxLength: Int = 10_000) async throws -> StoreHarness {
        switch kind {
        case .memory:
            return StoreHarness(store: InMemoryEndpointStore(streamMaxLength: streamMaxLength), kind: kind, redis: nil)
        case .redis, .redisTLS, .redisACL:
            var options = RedisServer.Options()
            if kind == .redisTLS {
                options.tls = try await TestCertificates(in: TemporaryDirectory(prefix: "legation-pki"))
            }
            if kind == .redisACL {
                options.aclUsers = ["user default off", "user contract on >contract-secret ~* &* +@all"]
            }
            let server = try await RedisServer(options)
            var storeOptions = RedisEndpointStore.Options()
            storeOptions.streamMaxLength = streamMaxLength
            let configuration =
                kind == .redisACL
                ? try server.configuration(user: "contract", password: "contract-secret") : try server.configuration()
            let store = RedisEndpointStore(configuration, options: storeOptions, logger: .quiet())
            return StoreHarness(store: store, kind: kind, redis: server)
        case .redisSentinel, .redisCluster:
            var storeOptions = RedisEndpointStore.Options()
            storeOptions.streamMaxLength = streamMaxLength
            if kind == .redisSentinel {
                let set = try await RedisSentinelSet(replicas: 0, sentinels: 1)
                let store = RedisEndpointStore(try set.configuration(), options: storeOptions, logger: .quiet())
                return StoreHarness(store: store, kind: kind, redis: nil, topology: set)
            }
            let cluster = try await RedisClusterNodes(primaries: 3)
            let store = RedisEndpointStore(try cluster.configuration(), options: storeOptions, logger: .quiet())
            return StoreHarness(store: store, kind: kind, redis: nil, topology: cluster)
        }
    }

    /// Sends a command to every primary (one server, or each shard of a cluster).
    func everywhere(_ arguments: [RedisArgument]) async throws {
        guard let store = store as? RedisEndpointStore else { return }
        if let cluster = store.client as? RedisClusterClient {
            _ = try await cluster.broadcast(arguments)
        } else {
            _ = try await store.client.send(arguments, key: nil, timeout: nil)
        }
    }

    /// Forgets all data, as `FLUSHALL` (or a restart without persistence) does.
    func loseAllData() async throws {
        if let store = store as? InMemoryEndpointStore {
            await store.loseAllData()
        } else {
            try await everywhere(["FLUSHALL"])
        }
    }

    /// Stores raw bytes as a service's record and appends a matching `put` entry, bypassing validation.
    func storeUnvalidated(source: SourceCluster, field: String, bytes: [UInt8]) async throws {
        if let store = store as? InMemoryEndpointStore {
            await store.storeUnvalidated(source: source, field: field, bytes: bytes)
        } else if let store = store as? RedisEndpointStore {
            let keys = RedisKeys(source)
            let client = store.client
            let generation = try await client.send(["HGET", RedisArgument(keys.meta), "generation"]).string ?? "g"
            let revision = try await client.send(["HINCRBY", RedisArgument(keys.meta), "revision", "1"]).integer ?? 0
            _ = try await client.send(["HSET", RedisArgument(keys.services), RedisArgument(field), RedisArgument(bytes)])
            _ = try await client.send([
                "XADD", RedisArgument(keys.changes), "*", "rev", RedisArgument(revision), "gen", RedisArgument(generation),
                "op", "put", "svc", RedisArgument(field), "rec", RedisArgument(bytes)
            ])
        }
    }

    func shutdown() async {
        if let store = store as? RedisEndpointStore { await store.close() }
    }
}

/// Damage the in-memory store the way the world damages Redis (for the contract suite only).
extension InMemoryEndpointStore {
    /// Forgets everything, as a Redis restarted without persistence does.
    func loseAllData() {
        stored = [:]
        registered = []
    }

    /// Stores raw bytes as a service's record with a matching `put` entry, bypassing validation, as a
    /// broken or hostile writer could.
    func storeUnvalidated(source: SourceCluster, field: String, bytes: [UInt8]) {
        var state = stored[source] ?? Stored()
        if state.generation == nil { state.generation = WallClock.newGeneration() }
        state.records[field] = (bytes, 0)
        _ = append(.put(service: field, record: bytes), to: &state)
        stored[source] = state
        registered.insert(source)
        wakeWaiters()
    }
}
