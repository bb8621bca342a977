import Foundation

@testable import Ingestor

// The oracle of the differential reader tests: the ingestor's Kubernetes objects as Foundation's
// `JSONDecoder` reads them, written as the compiler would synthesize it (required members decoded,
// optional ones `decodeIfPresent`, so `null` and absence are both nil). Only the tests have it: the
// ingestor reads with `JSONReader`.

extension ObjectMeta: Decodable {
    private enum Keys: String, CodingKey { case name, namespace, resourceVersion, labels, annotations, deletionTimestamp }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            name: try c.decode(String.self, forKey: .name), namespace: try c.decodeIfPresent(String.self, forKey: .namespace),
            resourceVersion: try c.decodeIfPresent(String.self, forKey: .resourceVersion),
            labels: try c.decodeIfPresent([String: String].self, forKey: .labels),
            annotations: try c.decodeIfPresent([String: String].self, forKey: .annotations),
            deletionTimestamp: try c.decodeIfPresent(String.self, forKey: .deletionTimestamp))
    }
}

extension EndpointSliceObject: Decodable {
    private enum Keys: String, CodingKey { case metadata, addressType, endpoints, ports }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata), addressType: try c.decode(String.self, forKey: .addressType),
            endpoints: try c.decodeIfPresent([Endpoint].self, forKey: .endpoints), ports: try c.decodeIfPresent([Port].self, forKey: .ports)
        )
    }
}

extension EndpointSliceObject.Endpoint: Decodable {
    private enum Keys: String, CodingKey { case addresses, conditions, hostname, targetRef, nodeName, zone, deprecatedTopology }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            addresses: try c.decode([String].self, forKey: .addresses),
            conditions: try c.decodeIfPresent(EndpointSliceObject.Conditions.self, forKey: .conditions),
            hostname: try c.decodeIfPresent(String.self, forKey: .hostname),
            targetRef: try c.decodeIfPresent(EndpointSliceObject.ObjectReference.self, forKey: .targetRef),
            nodeName: try c.decodeIfPresent(String.self, forKey: .nodeName), zone: try c.decodeIfPresent(String.self, forKey: .zone),
            deprecatedTopology: try c.decodeIfPresent([String: String].self, forKey: .deprecatedTopology))
    }
}

extension EndpointSliceObject.Conditions: Decodable {
    private enum Keys: String, CodingKey { case ready, serving, terminating }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            ready: try c.decodeIfPresent(Bool.self, forKey: .ready), serving: try c.decodeIfPresent(Bool.self, forKey: .serving),
            terminating: try c.decodeIfPresent(Bool.self, forKey: .terminating))
    }
}

extension EndpointSliceObject.ObjectReference: Decodable {
    private enum Keys: String, CodingKey { case kind, namespace, name }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            kind: try c.decodeIfPresent(String.self, forKey: .kind), namespace: try c.decodeIfPresent(String.self, forKey: .namespace),
            name: try c.decodeIfPresent(String.self, forKey: .name))
    }
}

extension EndpointSliceObject.Port: Decodable {
    private enum Keys: String, CodingKey { case name, `protocol`, port, appProtocol }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            name: try c.decodeIfPresent(String.self, forKey: .name), protocol: try c.decodeIfPresent(String.self, forKey: .protocol),
            port: try c.decodeIfPresent(Int.self, forKey: .port), appProtocol: try c.decodeIfPresent(String.self, forKey: .appProtocol))
    }
}

extension ServiceObject: Decodable {
    private enum Keys: String, CodingKey { case metadata, spec }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(metadata: try c.decode(ObjectMeta.self, forKey: .metadata), spec: try c.decodeIfPresent(Spec.self, forKey: .spec))
    }
}

extension ServiceObject.Spec: Decodable {
    private enum Keys: String, CodingKey { case ports, type, clusterIP }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            ports: try c.decodeIfPresent([ServiceObject.Port].self, forKey: .ports),
            type: try c.decodeIfPresent(String.self, forKey: .type),
            clusterIP: try c.decodeIfPresent(String.self, forKey: .clusterIP))
    }
}

extension ServiceObject.Port: Decodable {
    private enum Keys: String, CodingKey { case name, `protocol`, port, appProtocol }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            name: try c.decodeIfPresent(String.self, forKey: .name), protocol: try c.decodeIfPresent(String.self, forKey: .protocol),
            port: try c.decode(Int.self, forKey: .port), appProtocol: try c.decodeIfPresent(String.self, forKey: .appProtocol))
    }
}

extension StatusObject: Decodable {
    private enum Keys: String, CodingKey { case status, message, reason, code }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        self.init(
            status: try c.decodeIfPresent(String.self, forKey: .status), message: try c.decodeIfPresent(String.self, forKey: .message),
            reason: try c.decodeIfPresent(String.self, forKey: .reason), code: try c.decodeIfPresent(Int.self, forKey: .code))
    }
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
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: container, debugDescription: "unknown watch event type \(type.prefix(40))")
        }
    }
}
