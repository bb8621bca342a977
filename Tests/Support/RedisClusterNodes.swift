import Foundation
import LocalProcesses
import RedisStore
import Shared

/// A Redis Cluster of real processes on loopback, made with `redis-cli --cluster create`: `primaries`
/// shards, each with `replicasPerPrimary` replicas that take over when their primary stops answering for
/// `nodeTimeoutMilliseconds`. Slots can be migrated between nodes key by key, as `redis-cli --cluster
/// reshard` does, so clients meet ASK and MOVED.
public final class RedisClusterNodes: @unchecked Sendable {
    public private(set) var nodes: [RedisServer] = []

    /// - Parameter aclUsers: `user …` lines for every node (the default user stays on, for
    ///   `redis-cli --cluster`).
    public init(primaries: Int = 3, replicasPerPrimary: Int = 0, nodeTimeoutMilliseconds: Int = 1000, aclUsers: [String] = []) async throws
    {
        for _ in 0..<(primaries * (1 + replicasPerPrimary)) {
            var options = RedisServer.Options()
            options.aclUsers = aclUsers
            options.extraConfiguration = [
                "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-node-timeout \(nodeTimeoutMilliseconds)",
                "cluster-replica-validity-factor 0"
            ]
            nodes.append(try await RedisServer(options))
        }
        let directory = try TemporaryDirectory(prefix: "legation-cluster")
        defer { directory.remove() }
        let output = directory.file("create.log")
        let create = try ChildProcess(
            "/usr/bin/redis-cli",
            ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" } + [
                "--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"
            ],
            outputFile: output)
        let status = try await create.wait(timeout: .seconds(60))
        guard status == 0 else {
            throw TestSupportError(
                "redis-cli --cluster create failed: \((try? String(contentsOfFile: output, encoding: .utf8))?.suffix(1500) ?? "")")
        }
        guard await waitUntilSettled(within: .seconds(30)) else {
            throw TestSupportError("the cluster did not settle within 30 s: \(nodes.first?.log.suffix(1500) ?? "")")
        }
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>` (two seeds; the client finds the rest).
    public var url: String {
        "redis+cluster://" + nodes.prefix(2).map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    public func configuration() throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.connectTimeout = .seconds(1)
        configuration.commandTimeout = .seconds(2)
        configuration.reconnectInitialDelay = .milliseconds(20)
        configuration.reconnectMaximumDelay = .milliseconds(200)
        return configuration
    }

    /// Whether every live node says `cluster_state:ok`.
    public func waitUntilSettled(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            var ok = true
            for node in nodes where node.isRunning {
                let info = (try? await RedisSentinelSet.command(node.port, ["CLUSTER", "INFO"]))?.string ?? ""
                if !info.contains("cluster_state:ok") { ok = false }
            }
            if ok { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// The port of the primary that owns `slot` now, as a live node sees it.
    public func owner(ofSlot slot: Int) async throws -> Int {
        for node in nodes where node.isRunning {
            guard let reply = try? await RedisSentinelSet.command(node.port, ["CLUSTER", "SLOTS"]) else { continue }
            for entry in reply.array ?? [] {
                guard let fields = entry.array, fields.count >= 3, let start = fields[0].integer, let end = fields[1].integer,
                    (start...end).contains(Int64(slot)), let port = fields[2].array?[1].integer
                else { continue }
                return Int(port)
            }
        }
        throw TestSupportError("no live node knows the owner of slot \(slot)")
    }

    /// Moves `slot` to the primary on `port`, key by key (`pause` between keys: clients meanwhile get
    /// ASK for moved keys and TRYAGAIN for commands spanning both sides), then hands the slot over
    /// (clients then get MOVED).
    public func migrate(slot: Int, to port: Int, pause: Duration = .zero) async throws {
        let from = try await owner(ofSlot: slot)
        guard from != port else { return }
        let sourceID = try await id(from)
        let destinationID = try await id(port)
        try await expectOK(port, ["CLUSTER", "SETSLOT", RedisArgument(slot), "IMPORTING", RedisArgument(sourceID)])
        try await expectOK(from, ["CLUSTER", "SETSLOT", RedisArgument(slot), "MIGRATING", RedisArgument(destinationID)])
        while true {
            let keys = try await RedisSentinelSet.command(from, ["CLUSTER", "GETKEYSINSLOT", RedisArgument(slot), "1"]).array ?? []
            guard let key = keys.first?.string else { break }
            let reply = try await RedisSentinelSet.command(
                from, ["MIGRATE", "127.0.0.1", RedisArgument(port), "", "0", "5000", "KEYS", RedisArgument(key)])
            if let message = reply.errorMessage { throw TestSupportError("MIGRATE \(key): \(message)") }
            if pause > .zero { try await Task.sleep(for: pause) }
        }
        for node in nodes where node.isRunning {
            _ = try? await RedisSentinelSet.command(
                node.port, ["CLUSTER", "SETSLOT", RedisArgument(slot), "NODE", RedisArgument(destinationID)])
        }
    }

    /// The node on `port`.
    public func node(port: Int) -> RedisServer? { nodes.first { $0.port == port } }

    /// Ports of the primaries other than `port`.
    public func otherPrimaries(than port: Int) async -> [Int] {
        var ports = Set<Int>()
        for slot in stride(from: 0, to: 16384, by: 512) {
            if let owner = try? await owner(ofSlot: slot), owner != port { ports.insert(owner) }
        }
        return ports.sorted()
    }

    private func id(_ port: Int) async throws -> String {
        guard let id = try await RedisSentinelSet.command(port, ["CLUSTER", "MYID"]).string else {
            throw TestSupportError("no CLUSTER MYID from \(port)")
        }
        return id
    }

    private func expectOK(_ port: Int, _ arguments: [RedisArgument]) async throws {
        let reply = try await RedisSentinelSet.command(port, arguments)
        if let message = reply.errorMessage {
            throw TestSupportError("\(String(decoding: arguments[1].bytes, as: UTF8.self)) on \(port): \(message)")
        }
    }
}
