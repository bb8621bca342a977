import Synchronization

/// A set's endpoints: at hand, or made when first asked for. A set the aggregator merged from several
/// slices keeps a recipe (the slices and which runs of them it took) and makes its list only when
/// someone reads `EndpointSet.endpoints`: the ingestor's publish path never does (it writes the set's
/// content bytes), and not collecting the list saves touching every endpoint of the service, a cache
/// miss each, twice per event (once to collect, once to let go).
package enum EndpointList: Sendable {
    case ready([Endpoint])
    case deferred(DeferredEndpoints)

    var count: Int {
        switch self {
        case .ready(let endpoints): endpoints.count
        case .deferred(let deferred): deferred.count
        }
    }

    var endpoints: [Endpoint] {
        switch self {
        case .ready(let endpoints): endpoints
        case .deferred(let deferred): deferred.endpoints
        }
    }
}

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
