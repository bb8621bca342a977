/// One write of a batch.
public enum StoreWrite: Hashable, Sendable {
    case put(EndpointSet)
    case delete(ServiceKey)
}
