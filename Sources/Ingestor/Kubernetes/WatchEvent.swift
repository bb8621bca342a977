/// One event of a watch stream.
public enum WatchEvent<Object: Sendable>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// Only the resource version moved (`allowWatchBookmarks`); `initialEventsEnd` marks the end of a
    /// watch-list's initial events.
    case bookmark(resourceVersion: String, initialEventsEnd: Bool)
    case error(StatusObject)
}

extension EndpointSliceObject: ResourceVersioned {
    public var resourceVersion: String? { metadata.resourceVersion }
}

extension ServiceObject: ResourceVersioned {
    public var resourceVersion: String? { metadata.resourceVersion }
}

extension WatchEvent: Equatable where Object: Equatable {}
