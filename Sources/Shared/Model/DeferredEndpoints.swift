import Synchronization

/// Endpoints made by `make` when first asked for, once (thread-safe), then kept.
package final class DeferredEndpoints: Sendable {
    package let count: Int
    private let make: @Sendable () -> [Endpoint]
    private let made = Mutex<[Endpoint]?>(nil)

    /// - Parameters:
    ///   - count: how many `make` will return.
    ///   - make: a pure function of what it captures (immutable values).
    package init(count: Int, make: @escaping @Sendable () -> [Endpoint]) {
        self.count = count
        self.make = make
    }

    var endpoints: [Endpoint] {
        made.withLock { made in
            if let made { return made }
            let endpoints = make()
            precondition(endpoints.count == count, "deferred endpoints made \(endpoints.count), not \(count)")
            made = endpoints
            return endpoints
        }
    }
}
