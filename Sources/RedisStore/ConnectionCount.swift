import Synchronization

/// Connections a client (or the clients of one Redis Cluster) made: the store's session
/// (`EndpointStoreSession`). Read without a hop to the client's actor, as publishers and followers read
/// it on every turn of their loops.
final class ConnectionCount: Sendable {
    private let count = Atomic<UInt64>(0)

    init() {}

    func increment() { count.add(1, ordering: .relaxed) }

    var value: UInt64 { count.load(ordering: .relaxed) }
}
