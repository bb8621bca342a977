/// What happened to one service's endpoints in one source: its full set now (never a delta), or its
/// removal. The same shape on both sides of the store: what a source hands the publisher, and what a
/// reader hands the server.
public enum EndpointChange: Hashable, Sendable {
    case upsert(EndpointSet)
    case remove(ServiceKey)
}
