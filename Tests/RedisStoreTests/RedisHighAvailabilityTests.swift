import LegationTestSupport
import Shared
import Testing

@testable import RedisStore

/// The Sentinel and Cluster clients' own rules, against real redis-server processes where it matters.
@Suite(.timeLimit(.minutes(2)))
struct RedisHighAvailabilityTests {
    @Test func sentinelAndClusterURLsParse() throws {
        let sentinel = try RedisConfiguration(url: "redis+sentinel://ingestor:s3cret@10.0.0.1,10.0.0.2:26380,[fd00::3]/mymaster/2")
        #expect(
            sentinel.topology
                == .sentinel(
                    masterName: "mymaster",
                    sentinels: [
                        .init(host: "10.0.0.1", port: 26379), .init(host: "10.0.0.2", port: 26380), .init(host: "fd00::3", port: 26379)
                    ]))
        #expect(sentinel.database == 2 && sentinel.username == "ingestor" && sentinel.password == "s3cret")
        #expect(sentinel.redactedURL == "redis+sentinel://ingestor:***@10.0.0.1:26379,10.0.0.2:26380,[fd00::3]:26379/mymaster/2")

        let cluster = try RedisConfiguration(url: "rediss+cluster://redis-0.redis:6379,redis-1.redis")
        #expect(cluster.topology == .cluster(seeds: [.init(host: "redis-0.redis", port: 6379), .init(host: "redis-1.redis", port: 6379)]))
        #expect(cluster.tls != nil)
        #expect(cluster.redactedURL == "rediss+cluster://redis-0.redis:6379,redis-1.redis:6379")
        #expect(try RedisConfiguration(url: "redis://h").topology == .standalone)
    }

    @Test(arguments: [
        ("redis+sentinel://10.0.0.1", "names the master"),
        ("redis+sentinel://10.0.0.1/", "names the master"),
        ("redis+sentinel://10.0.0.1/my master", "not a printable name"),
        ("redis+sentinel://10.0.0.1/m/1/2", "ends with"),
        ("redis+cluster://10.0.0.1/3", "only database 0"),
        ("redis+cluster://a,,b", "empty host"),
        ("redis://a,b", "names one server"),
        ("redis+mesh://a", "must start with")
    ])
    func badHATopologiesAreRefusedWithAReason(_ url: String, _ reason: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.code == .configuration)
            #expect(error.message.contains(reason), "\(error.message)")
        }
    }

    /// The slot of every key layout Legation uses, and of odd keys, is what Redis itself computes.
    @Test func hashSlotsAreRedisOwn() async throws {
        var options = RedisServer.Options()
        options.extraConfiguration = ["cluster-enabled yes", "cluster-config-file nodes.conf"]
        let node = try await RedisServer(options)
        #expect(RedisClusterClient.slot(of: "123456789") == 0x31C3, "the CRC16/XMODEM check value")
        var keys = ["", "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "{", "}{x}", "ünïcödé"]
        for source in ["east", "west", "a", "cluster-with-a-long-name-0123456789"] {
            let set = RedisKeys(try SourceCluster(source))
            keys += [set.meta, set.services, set.changes, set.lease, set.epoch]
        }
        var random = SplitMix64(seed: 0x5107)
        for _ in 0..<200 {
            keys.append(String((0..<Int.random(in: 1...24, using: &random)).map { _ in "{}ab:xyz019-".randomElement(using: &random)! }))
        }
        for key in keys {
            let reply = try await RedisSentinelSet.command(node.port, ["CLUSTER", "KEYSLOT", RedisArgument(key)])
            #expect(reply.integer.map(Int.init) == RedisClusterClient.slot(of: key), "\(String(reflecting: key))")
        }
        let east = RedisKeys(try SourceCluster("east"))
        #expect(
            Set(
                [east.meta, east.services, east.hashes, east.changes, east.canary, east.heartbeat, east.lease, east.epoch, east.removed]
                    .map(RedisClusterClient.slot(of:))
            ).count == 1, "one source, one slot")
    }

    @Test func redirectsAndSlotMapsParseAndNonsenseDoesNot() throws {
        #expect(
            RedisClusterClient.redirect("MOVED 3999 127.0.0.1:6381").map { "\($0.slot) \($0.address) \($0.asking)" }
                == "3999 127.0.0.1:6381 false")
        #expect(
            RedisClusterClient.redirect("ASK 12 redis-2.redis:7000").map { "\($0.slot) \($0.address) \($0.asking)" }
                == "12 redis-2.redis:7000 true")
        #expect(RedisClusterClient.redirect("MOVED 1 ::1:7001").map { "\($0.address)" } == "[::1]:7001")
        for bad in ["MOVED", "MOVED 99999 h:1", "MOVED 1 h", "MOVED 1 h:0", "MOVED x h:1", "ASK 1 :6379", "ERR MOVED 1 h:1"] {
            #expect(RedisClusterClient.redirect(bad) == nil, "\(bad)")
        }
        let queried = RedisConfiguration.Address(host: "10.0.0.9", port: 7000)
        let map: RESPValue = .array([
            .array([
                .integer(0), .integer(5460), .array([.bulkString(Array("10.0.0.1".utf8)), .integer(7000), .bulkString(Array("id1".utf8))])
            ]),
            .array([.integer(5461), .integer(16383), .array([.bulkString([]), .integer(7001)])])
        ])
        let ranges = try RedisClusterClient.parseSlots(map, queried: queried)
        #expect(ranges.map { "\($0.0.lowerBound)-\($0.0.upperBound) \($0.1)" } == ["0-5460 10.0.0.1:7000", "5461-16383 10.0.0.9:7001"])
        for bad: RESPValue in [
            .null, .error("ERR This instance has cluster support disabled"), .array([.array([.integer(5), .integer(2)])]),
            .array([.array([.integer(0), .integer(99999), .array([.bulkString([]), .integer(1)])])])
        ] {
            #expect(throws: StoreError.self) { try RedisClusterClient.parseSlots(bad, queried: queried) }
        }
    }

    /// The first sentinel listed is down: the client asks the next. Then the sentinels fail the primary
    /// over gracefully (it stays up, as a replica). Until they demote it, the old primary still takes
    /// writes (those are lost when it resyncs: why writers reconcile on a new session); once demoted it
    /// answers READONLY, which drops the connection, and writes reach the new primary.
    @Test func theSentinelClientSkipsADeadSentinelAndFollowsAFailover() async throws {
        let set = try await RedisSentinelSet(replicas: 1, sentinels: 1)
        var configuration = try set.configuration()
        let dead = try freeLoopbackPort()
        guard case .sentinel(let name, let sentinels) = configuration.topology else {
            Issue.record("not sentinel")
            return
        }
        configuration.topology = .sentinel(masterName: name, sentinels: [.init(host: "127.0.0.1", port: dead)] + sentinels)
        let client = RedisClient(configuration, logger: .quiet())
        #expect(try await client.send(["SET", "k", "1"]) == .simpleString("OK"))
        #expect(client.session == 1)
        let old = try #require(await set.primaryPort())

        #expect(
            try await RedisSentinelSet.command(set.sentinels[0].port, ["SENTINEL", "FAILOVER", RedisArgument(name)]) == .simpleString("OK"))
        #expect(await set.waitForFailover(from: old))
        let now = try #require(await set.primaryPort())
        #expect(now != old)
        var landed = false
        for attempt in 0..<200 where !landed {
            _ = try? await client.send(["SET", "k", RedisArgument("v\(attempt)")])
            landed = (try? await RedisSentinelSet.command(now, ["GET", "k"]).string) == "v\(attempt)"
            if !landed { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(landed, "writes reach the new primary")
        #expect(client.session >= 2, "by a new connection")
        await client.close()
    }

    /// After the primary dies, the writer keeps (or takes again) its lease on the new one with fencing
    /// intact: had the lease not reached the replica, a rival takes it at a larger epoch and the old
    /// writer's writes are refused.
    @Test func fencingSurvivesAFailoverEvenWhenTheLeaseWasLost() async throws {
        let set = try await RedisSentinelSet(replicas: 1, sentinels: 3)
        let store = RedisEndpointStore(try set.configuration(), logger: .quiet())
        let rival = RedisEndpointStore(try set.configuration(), logger: .quiet())
        let source = Fixtures.source("east")
        let lease = try #require(try await store.acquireLease(source: source, holder: "a", ttl: .seconds(30)))
        _ = try await store.write([.put(Fixtures.endpointSet("web", source: source))], lease: lease)
        _ = try await RedisSentinelSet.command(try #require(await set.primaryPort()), ["WAIT", "1", "2000"])

        let old = try await set.killPrimary()
        #expect(await set.waitForFailover(from: old))
        var renewed = false
        for _ in 0..<100 where !renewed {
            renewed = (try? await store.renewLease(lease, ttl: .seconds(30))) == true
            if !renewed { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(renewed, "the replicated lease holds on the new primary")
        #expect(try await rival.acquireLease(source: source, holder: "b", ttl: .seconds(30)) == nil)
        #expect(try await store.snapshot(of: source).records.count == 1, "the write reached the replica")

        // As if the lease had not been replicated: it is gone on the new primary.
        _ = try await store.client.send(["DEL", RedisArgument(RedisKeys(source).lease)])
        #expect(try await store.renewLease(lease, ttl: .seconds(30)) == false)
        let taken = try #require(try await rival.acquireLease(source: source, holder: "b", ttl: .seconds(30)))
        #expect(taken.epoch > lease.epoch)
        await #expect(throws: StoreError.self) { try await store.write([.delete(Fixtures.service("web"))], lease: lease) }
        #expect(try await store.snapshot(of: source).records.count == 1, "the deposed writer changed nothing")
        await store.close()
        await rival.close()
    }

    @Test func sentinelsWithAPasswordOfTheirOwn() async throws {
        let set = try await RedisSentinelSet(replicas: 0, sentinels: 1, sentinelPassword: "sentinel-secret")
        var settings = RedisSettings()
        settings.url = set.url
        let refused = RedisClient(try settings.configuration(clientName: "t", environment: [:]), logger: .quiet())
        do {
            _ = try await refused.send(["PING"])
            Issue.record("a sentinel answered without its password")
        } catch let error as StoreError {
            #expect(error.message.contains("no sentinel named the primary") && error.message.contains("NOAUTH"), "\(error)")
        }
        let client = RedisClient(
            try settings.configuration(clientName: "t", environment: ["LEGATION_REDIS_SENTINEL_PASSWORD": "sentinel-secret"]),
            logger: .quiet())
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))
        await client.close()
        await refused.close()
    }

    /// A server demoted to a replica under a connected client (it keeps the connection and answers
    /// writes with READONLY): the client hands the reply back and drops the connection, so the next
    /// command connects again (under Sentinel: to the primary the sentinels name then).
    @Test func aReadOnlyReplyDropsTheConnection() async throws {
        let primary = try await RedisServer()
        let other = try await RedisServer()
        let client = RedisClient(try primary.configuration(), logger: .quiet())
        #expect(try await client.send(["SET", "k", "1"]) == .simpleString("OK"))
        _ = try await RedisSentinelSet.command(primary.port, ["REPLICAOF", "127.0.0.1", RedisArgument(other.port)])
        let refused = try await client.send(["SET", "k", "2"])
        #expect(refused.errorMessage?.hasPrefix("READONLY") == true, "\(refused)")
        #expect(client.session == 1)
        _ = try await RedisSentinelSet.command(primary.port, ["REPLICAOF", "NO", "ONE"])
        #expect(try await client.send(["SET", "k", "3"]) == .simpleString("OK"))
        #expect(client.session == 2, "a new connection after READONLY")
        await client.close()
    }
}
