import Foundation

/// A Kubernetes `Status` object: what the API server answers with on errors (as an HTTP body, or as the
/// object of an `ERROR` watch event).
public struct StatusObject: Decodable, Sendable, Equatable, CustomStringConvertible {
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

extension WatchEvent: Decodable where Object: Decodable {
    private enum Keys: String, CodingKey { case type, object }
    private struct BookmarkObject: Decodable {
        struct Metadata: Decodable {
            var resourceVersion: String?
            var annotations: [String: String]?
        }
        var metadata: Metadata
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        let type = try container.decode(String.self, forKey: .type)
        switch type {
        case "ADDED": self = .added(try container.decode(Object.self, forKey: .object))
        case "MODIFIED": self = .modified(try container.decode(Object.self, forKey: .object))
        case "DELETED": self = .deleted(try container.decode(Object.self, forKey: .object))
        case "BOOKMARK":
            let object = try container.decode(BookmarkObject.self, forKey: .object)
            guard let version = object.metadata.resourceVersion, !version.isEmpty else {
                throw DecodingError.dataCorruptedError(forKey: .object, in: container, debugDescription: "bookmark without resourceVersion")
            }
            self = .bookmark(
                resourceVersion: version,
                initialEventsEnd: object.metadata.annotations?["k8s.io/initial-events-end"] == "true")
        case "ERROR": self = .error(try container.decode(StatusObject.self, forKey: .object))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown watch event type \(type.prefix(40))")
        }
    }
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
