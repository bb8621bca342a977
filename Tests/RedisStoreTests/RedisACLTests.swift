import Foundation
import LegationTestSupport
import RedisStore
import Shared
import Testing

/// deploy/redis/users.acl, loaded into a real redis-server: each role can do its job and nothing more.
@Suite(.timeLimit(.minutes(1)))
struct RedisACLTests {
    static func aclLines() throws -> [String] {
        let root = Repository.root
        let text = try String(contentsOf: root.appendingPathComponent("deploy/redis/users.acl"), encoding: .utf8)
        return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("user ") }
    }

    func store(_ server: RedisServer, _ user: String, _ password: String) throws -> RedisEndpointStore {
        RedisEndpointStore(try server.configuration(user: user, password: password))
    }

    enum Topology: String, CaseIterable, Sendable { case sentinel, cluster }

    /// The same users are enough under Sentinel (`ROLE` after connecting) and Redis Cluster
    /// (`CLUSTER SLOTS`, `ASKING`).
    @Test(arguments: Topology.allCases)
    func theUsersServeUnderSentinelAndCluster(_ topology: Topology) async throws {
        let lines = try Self.aclLines()
        var configuration: RedisConfiguration
        var keepAlive: (any Sendable)?
        switch topology {
        case .sentinel:
            let set = try await RedisSentinelSet(replicas: 0, sentinels: 1, aclUsers: lines)
            configuration = try set.configuration()
            keepAlive = set
        case .cluster:
            let cluster = try await RedisClusterNodes(primaries: 3, aclUsers: lines)
            configuration = try cluster.configuration()
            keepAlive = cluster
        }
        let east = try SourceCluster("east")
        configuration.username = "legation-ingestor-east"
        configuration.password = "CHANGE-ME-east"
        let writer = RedisEndpointStore(configuration, logger: .quiet())
        let lease = try #require(try await writer.acquireLease(source: east, holder: "e1", ttl: .seconds(10)))
        let result = try await writer.write([.put(Fixtures.endpointSet("web", source: east))], lease: lease)
        try await writer.markSynced(generation: result.generation, serviceCount: 1, lease: lease)
        try await writer.heartbeat(lease: lease, ttl: .seconds(60))
        configuration.username = "legation-xds-server"
        configuration.password = "CHANGE-ME-reader"
        let reader = RedisEndpointStore(configuration, logger: .quiet())
        #expect(try await reader.sources() == [east])
        #expect(try await reader.snapshot(of: east).records.count == 1)
        #expect(try await reader.heartbeats(of: [east]).count == 1)
        #expect(try await reader.changes(after: [east: .start], limit: 10, wait: .milliseconds(100))[east]?.count == 2)
        await writer.close()
        await reader.close()
        _ = keepAlive
    }

    @Test func ingestorsWriteOnlyTheirOwnSourceAndServersOnlyRead() async throws {
        var options = RedisServer.Options()
        options.aclUsers = ["user default off"] + (try Self.aclLines())
        let server = try await RedisServer(options)
        let east = try SourceCluster("east")
        let west = try SourceCluster("west")

        let eastWriter = try store(server, "legation-ingestor-east", "CHANGE-ME-east")
        let lease = try #require(try await eastWriter.acquireLease(source: east, holder: "e1", ttl: .seconds(10)))
        let web = Fixtures.endpointSet("web", source: east)
        let result = try await eastWriter.write([.put(web)], lease: lease)
        try await eastWriter.markSynced(generation: result.generation, serviceCount: 1, lease: lease)
        try await eastWriter.heartbeat(lease: lease, ttl: .seconds(5))
        #expect(try await eastWriter.renewLease(lease, ttl: .seconds(10)))
        #expect(try await eastWriter.storedHashes(source: east).count == 1)

        // Another source's keys are out of reach.
        do {
            _ = try await eastWriter.acquireLease(source: west, holder: "e1", ttl: .seconds(10))
            Issue.record("the east ingestor took west's lease")
        } catch let error as StoreError {
            #expect(error.code == .authentication || error.code == .protocolError)
            #expect(error.message.contains("NOPERM") || error.message.contains("permission"))
        }

        let reader = try store(server, "legation-xds-server", "CHANGE-ME-reader")
        #expect(try await reader.sources() == [east])
        let snapshot = try await reader.snapshot(of: east)
        #expect(snapshot.canary != nil)
        #expect(snapshot.records.count == 1)
        let changes = try await reader.changes(after: [east: .start], limit: 10, wait: .milliseconds(50))
        #expect(changes[east]?.count == 2)
        // A reader cannot write, not even through a script.
        await #expect(throws: StoreError.self) {
            try await reader.acquireLease(source: try SourceCluster("north"), holder: "r", ttl: .seconds(1))
        }
        await #expect(throws: StoreError.self) { try await reader.removeSource(east) }

        let admin = try store(server, "legation-admin", "CHANGE-ME-admin")
        try await admin.removeSource(east)
        #expect(try await reader.snapshot(of: east).removed)
        for client in [eastWriter, reader, admin] { await client.close() }
    }
}
