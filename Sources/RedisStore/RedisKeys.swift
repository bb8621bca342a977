import Shared

/// WARNING - STABLE API: the Redis key layout (docs/redis-schema.md). Every ingestor and xds-server
/// version of a mesh reads and writes these names; changing one breaks mixed-version meshes. A new
/// layout gets a new version prefix (`legation:v2:`) and a migration.
///
/// Every key of a source carries the hash tag `{<source>}`, so under Redis Cluster one source's state
/// and change stream live on one shard and a script can write them atomically.
public struct RedisKeys: Sendable, Hashable {
    /// The set of registered source names. Not hash-tagged: it is written on its own.
    public static let sources = "legation:v1:sources"

    public let source: SourceCluster

    public init(_ source: SourceCluster) { self.source = source }

    private var prefix: String { "legation:v1:{\(source.name)}" }

    /// STRING `"<holder> <epoch>"` with a TTL: who may write.
    public var lease: String { "\(prefix):lease" }
    /// STRING: the fencing epoch counter. Only grows; seeded from the clock when absent.
    public var epoch: String { "\(prefix):epoch" }
    /// HASH `generation` (the data's identity; new after data loss), `revision` (per-write counter).
    public var meta: String { "\(prefix):meta" }
    /// HASH `namespace/name` → EndpointSetRecord bytes.
    public var services: String { "\(prefix):services" }
    /// HASH `namespace/name` → content hash (16 lowercase hex digits), to skip unchanged writes.
    public var hashes: String { "\(prefix):hashes" }
    /// STREAM of changes: fields `rev`, `gen`, `op` (`put`/`del`/`synced`/`removed`), `svc`, `rec`.
    public var changes: String { "\(prefix):changes" }
    /// STRING SyncCanaryRecord bytes: the writer finished its initial list of this generation.
    public var canary: String { "\(prefix):canary" }
    /// STRING HeartbeatRecord bytes with a TTL: the writer is alive.
    public var heartbeat: String { "\(prefix):heartbeat" }
    /// STRING (removal time, ms): the source was removed explicitly; readers drain it.
    public var removed: String { "\(prefix):removed" }

    /// The content-hash text stored in `hashes`.
    static func hashText(_ hash: UInt64) -> String {
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
