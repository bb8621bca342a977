import ArgumentParser
import Foundation
import Ingestor
import Logging
import Metrics
import Prometheus
import RedisStore
import Server
import Shared
import Synchronization

/// The demo's window on the index: what the follower delivered, merged.
final class DemoView: Sendable {
    struct State: Sendable {
        var index = EndpointIndex()
        var synced: Set<SourceCluster> = []
        var syncedSources: Int { synced.count }
        let webHTTP = ClusterKey(
            service: try! ServiceKey(namespace: "default", name: "web"), port: try! ServicePort(name: "http", port: 80))

        func health(of address: String) -> EndpointHealth? {
            for cluster in index.clusters.keys {
                if let member = index.members(of: cluster).first(where: { $0.endpoint.address == address }) {
                    return EndpointHealth.of(member.endpoint.conditions)
                }
            }
            return nil
        }
    }

    private let state = Mutex(State())

    func apply(_ delivery: StoreFollower.Delivery) {
        state.withLock { state in
            _ = state.index.apply(delivery.updates, from: delivery.source)
            if delivery.feed.isSynced { state.synced.insert(delivery.source) }
        }
    }

    func waitUntil(_ condition: (State) -> Bool, timeout: Duration = .seconds(10)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition(state.withLock { $0 }) { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return false
    }

    func render() -> String {
        let index = state.withLock { $0.index }
        var lines: [String] = []
        for (cluster, port) in index.clusters.sorted(by: { $0.key < $1.key }) {
            let members = index.members(of: cluster)
            let protocolNote = port.isHTTP2 ? " (HTTP/2 upstream)" : ""
            lines.append(
                "  \(cluster.name)\(protocolNote): \(members.count) endpoint\(members.count == 1 ? "" : "s") from \(Set(members.map(\.source)).map(\.name).sorted().joined(separator: ", "))"
            )
            for member in members {
                let health = EndpointHealth.of(member.endpoint.conditions)?.rawValue ?? "excluded"
                let address = member.endpoint.isIPv6 ? "[\(member.endpoint.address)]" : member.endpoint.address
                let locality = "\(member.endpoint.zone)/\(member.source)"
                lines.append(
                    "    \((address + ":" + String(member.targetPort)).padding(toLength: 22, withPad: " ", startingAt: 0)) locality \(locality.padding(toLength: 18, withPad: " ", startingAt: 0)) \(health)"
                )
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
