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
