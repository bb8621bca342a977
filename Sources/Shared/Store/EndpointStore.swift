/// Operator actions on the store.
public protocol EndpointStoreAdministration: Sendable {
    /// Removes a source explicitly: its data is deleted and a tombstone tells every reader to drain its
    /// endpoints. (A source that merely stops, or whose data is lost, keeps its endpoints.)
    func removeSource(_ source: SourceCluster) async throws
}

/// A store both sides can use.
public typealias EndpointStore = EndpointStoreWriter & EndpointStoreReader & EndpointStoreAdministration
