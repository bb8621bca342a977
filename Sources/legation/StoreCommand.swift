import ArgumentParser
import Foundation
import RedisStore
import Shared

/// `legation store`: look at and administer what is in Redis.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Inspect and administer Legation's data in Redis.",
        subcommands: [Status.self, RemoveSource.self])

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show every source: writer, generation, canary, heartbeat, services.")

        @OptionGroup var redis: RedisOptions

        @Flag(help: "List every service of every source.")
        var services = false

        func run() async throws {
            guard let configuration = try redis.configuration(clientName: "legation-cli") else {
                throw ValidationError("needs --redis-url (or LEGATION_REDIS_URL)")
            }
            let store = RedisEndpointStore(configuration)
            do {
                try await report(store, configuration: configuration)
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        }

        private func report(_ store: RedisEndpointStore, configuration: RedisConfiguration) async throws {
            let sources = try await store.sources().sorted()
            if sources.isEmpty { print("no sources registered in \(configuration.redactedURL)") }
            for source in sources {
                let snapshot = try await store.snapshot(of: source)
                var feed = SourceFeed(source: source)
                let outcome = feed.apply(snapshot)
                let heartbeat =
                    snapshot.heartbeat.map { "\($0.holder) (epoch \($0.epoch), expires in \($0.remainingMilliseconds) ms)" }
                    ?? "none: STALE"
                let canary =
                    snapshot.canary.map { "synced by \($0.holder), \($0.serviceCount) services" }
                    ?? "absent: initial list not complete, or data lost"
                print(
                    """
                    source \(source)
                      generation  \(snapshot.generation ?? "none")   revision \(snapshot.revision)   stream at \(snapshot.cursor)
                      canary      \(canary)
                      heartbeat   \(heartbeat)
                      services    \(feed.services.count) (\(feed.services.values.reduce(0) { $0 + $1.endpoints.count }) endpoints), \(outcome.rejections.count) unreadable records
                    """)
                for rejection in outcome.rejections { print("      unreadable: \(rejection)") }
                if services {
                    for (key, set) in feed.services.sorted(by: { $0.key < $1.key }) {
                        print("      \(key)  \(set.endpoints.count) endpoints  hash \(String(set.contentHash, radix: 16))")
                    }
                }
            }
        }
    }

    struct RemoveSource: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-source",
            abstract: "Remove a source: its endpoints are drained from every sidecar. Stop its ingestors first.")

        @Argument(help: "The source cluster's name.")
        var source: String

        @OptionGroup var redis: RedisOptions

        func run() async throws {
            let cluster: SourceCluster
            do { cluster = try SourceCluster(source) } catch { throw ValidationError(error.message) }
            guard let configuration = try redis.configuration(clientName: "legation-cli") else {
                throw ValidationError("needs --redis-url (or LEGATION_REDIS_URL)")
            }
            let store = RedisEndpointStore(configuration)
            try await store.removeSource(cluster)
            await store.close()
            print("removed \(cluster): readers drain its endpoints; its last writer is fenced off")
        }
    }
}
