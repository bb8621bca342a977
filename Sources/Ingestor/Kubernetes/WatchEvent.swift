/// A Kubernetes `Status` object: what the API server answers with on errors (as an HTTP body, or as the
/// object of an `ERROR` watch event).
public struct StatusObject: Sendable, Equatable, CustomStringConvertible {
    public var status: String?
    public var message: String?
    public var reason: String?
    public var code: Int?

    /// `410 Gone` / reason `Expired` or `Gone`: the resource version is too old; relist.
    public var isExpired: Bool { code == 410 || reason == "Expired" || reason == "Gone" }

    public var description: String {
        "\(code.map(String.init) ?? "?") \(reason ?? ""): \(message ?? "")"
    }
}

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

/// Objects that carry a resource version, so the watch can resume after them.
public protocol ResourceVersioned {
    var resourceVersion: String? { get }
}

extension EndpointSliceObject: ResourceVersioned {
    public var resourceVersion: String? { metadata.resourceVersion }
}

extension ServiceObject: ResourceVersioned {
    public var resourceVersion: String? { metadata.resourceVersion }
}

extension WatchEvent: Equatable where Object: Equatable {}
