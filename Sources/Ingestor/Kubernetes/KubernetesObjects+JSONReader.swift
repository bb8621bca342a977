import Foundation
import Shared

/// The ingestor's Kubernetes objects read straight from JSON bytes by `JSONReader` (the hot path). A
/// differential test (`JSONReaderTests`, against Foundation's `JSONDecoder` through conformances that
/// exist only in the tests) holds both readings equal on every fixture and on mutated input: same
/// value, or both rejected (this reader is stricter: a member it reads twice in one object, and a string
/// anywhere with invalid UTF-8, a raw control character or a bad escape, are errors).

extension ObjectMeta: KubernetesReadable {
    private static let members: [StaticString] = ["name", "namespace", "resourceVersion", "labels", "annotations", "deletionTimestamp"]

    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var name: String?
        var namespace: String?
        var resourceVersion: String?
        var deletionTimestamp: String?
        var labels: [String: String]?
        var annotations: [String: String]?
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            switch member {
            case 0: name = try reader.readString()
            case 1: namespace = try reader.readStringOrNull()
            case 2: resourceVersion = try reader.readStringOrNull()
            case 3: labels = try reader.readStringMapOrNull()
            case 4: annotations = try reader.readStringMapOrNull()
            default: deletionTimestamp = try reader.readStringOrNull()
            }
        }
        guard let name else { throw reader.failure("metadata has no name") }
        self.init(
            name: name, namespace: namespace, resourceVersion: resourceVersion, labels: labels, annotations: annotations,
            deletionTimestamp: deletionTimestamp)
    }
}

extension EndpointSliceObject: KubernetesReadable {
    private static let members: [StaticString] = ["metadata", "addressType", "endpoints", "ports"]

    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var metadata: ObjectMeta?
        var addressType: String?
        var endpoints: [Endpoint]?
        var ports: [Port]?
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            switch member {
            case 0: metadata = try ObjectMeta(reading: &reader)
            case 1: addressType = try reader.readString()
            case 2:
                // With a memo and the slice's name already read, an endpoint whose bytes equal one of
                // last time's (the next position first: the same endpoints in the same order, as
                // usual; then a step or two off) is not read: that value is handed out again.
                guard let memo = reader.memo, let metadata, !memo.document.isEmpty else {
                    endpoints = try reader.readArrayOrNull { (reader: inout JSONReader) throws(JSONReader.Failure) in
                        try Endpoint(reading: &reader)
                    }
                    return
                }
                let memoKey = "\(metadata.namespace ?? "")/\(metadata.name)"
                let previous = memo.slices.removeValue(forKey: memoKey) ?? ReadMemo.Slice()
                var current = ReadMemo.Slice(document: memo.document)
                endpoints = try reader.readEndpoints(remembering: previous, into: &current)
                memo.slices[memoKey] = current
            default:
                ports = try reader.readArrayOrNull { (reader: inout JSONReader) throws(JSONReader.Failure) in try Port(reading: &reader) }
            }
        }
        guard let metadata else { throw reader.failure("EndpointSlice has no metadata") }
        guard let addressType else { throw reader.failure("EndpointSlice has no addressType") }
        self.init(metadata: metadata, addressType: addressType, endpoints: endpoints, ports: ports)
    }
}

extension EndpointSliceObject.Endpoint {
    private static let members: [StaticString] = [
        "addresses", "conditions", "hostname", "nodeName", "zone", "targetRef", "deprecatedTopology"
    ]
    private static let conditionMembers: [StaticString] = ["ready", "serving", "terminating"]
    private static let referenceMembers: [StaticString] = ["kind", "namespace", "name"]

    init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var addresses: [String]?
        var conditions: EndpointSliceObject.Conditions?
        var hostname: String?
        var nodeName: String?
        var zone: String?
        var targetRef: EndpointSliceObject.ObjectReference?
        var deprecatedTopology: [String: String]?
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            switch member {
            case 0:
                var list: [String] = []
                try reader.readArray { (reader: inout JSONReader) throws(JSONReader.Failure) in list.append(try reader.readString()) }
                addresses = list
            case 1:
                var value = EndpointSliceObject.Conditions()
                if try reader.readMembersOrNull(
                    Self.conditionMembers,
                    { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                        switch member {
                        case 0: value.ready = try reader.readBoolOrNull()
                        case 1: value.serving = try reader.readBoolOrNull()
                        default: value.terminating = try reader.readBoolOrNull()
                        }
                    })
                {
                    conditions = value
                }
            case 2: hostname = try reader.readStringOrNull()
            case 3: nodeName = try reader.readStringOrNull()
            case 4: zone = try reader.readStringOrNull()
            case 5:
                var value = EndpointSliceObject.ObjectReference()
                if try reader.readMembersOrNull(
                    Self.referenceMembers,
                    { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                        switch member {
                        case 0: value.kind = try reader.readStringOrNull()
                        case 1: value.namespace = try reader.readStringOrNull()
                        default: value.name = try reader.readStringOrNull()
                        }
                    })
                {
                    targetRef = value
                }
            default: deprecatedTopology = try reader.readStringMapOrNull()
            }
        }
        guard let addresses else { throw reader.failure("endpoint has no addresses") }
        self.init(
            addresses: addresses, conditions: conditions, hostname: hostname, targetRef: targetRef, nodeName: nodeName, zone: zone,
            deprecatedTopology: deprecatedTopology)
    }
}

extension EndpointSliceObject.Port {
    private static let members: [StaticString] = ["name", "protocol", "port", "appProtocol"]

    init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var value = Self()
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            switch member {
            case 0: value.name = try reader.readStringOrNull()
            case 1: value.protocol = try reader.readStringOrNull()
            case 2: value.port = try reader.readIntOrNull()
            default: value.appProtocol = try reader.readStringOrNull()
            }
        }
        self = value
    }
}

extension ServiceObject: KubernetesReadable {
    private static let members: [StaticString] = ["metadata", "spec"]
    private static let specMembers: [StaticString] = ["ports", "type", "clusterIP"]

    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var metadata: ObjectMeta?
        var spec: Spec?
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            guard member == 1 else {
                metadata = try ObjectMeta(reading: &reader)
                return
            }
            var value = Spec()
            if try reader.readMembersOrNull(
                Self.specMembers,
                { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                    switch member {
                    case 0:
                        value.ports = try reader.readArrayOrNull { (reader: inout JSONReader) throws(JSONReader.Failure) in
                            try Port(reading: &reader)
                        }
                    case 1: value.type = try reader.readStringOrNull()
                    default: value.clusterIP = try reader.readStringOrNull()
                    }
                })
            {
                spec = value
            }
        }
        guard let metadata else { throw reader.failure("Service has no metadata") }
        self.init(metadata: metadata, spec: spec)
    }
}

extension ServiceObject.Port {
    private static let members: [StaticString] = ["name", "protocol", "port", "appProtocol"]

    init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var name: String?
        var transport: String?
        var appProtocol: String?
        var port: Int?
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            switch member {
            case 0: name = try reader.readStringOrNull()
            case 1: transport = try reader.readStringOrNull()
            case 2: port = try reader.readInt()
            default: appProtocol = try reader.readStringOrNull()
            }
        }
        guard let port else { throw reader.failure("service port has no port number") }
        self.init(name: name, protocol: transport, port: port, appProtocol: appProtocol)
    }
}

extension StatusObject: KubernetesReadable {
    private static let members: [StaticString] = ["status", "message", "reason", "code"]

    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var value = Self()
        try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
            switch member {
            case 0: value.status = try reader.readStringOrNull()
            case 1: value.message = try reader.readStringOrNull()
            case 2: value.reason = try reader.readStringOrNull()
            default: value.code = try reader.readIntOrNull()
            }
        }
        self = value
    }
}

/// The members of a watch event, a bookmark's object and its metadata that are read.
private let eventMembers: [StaticString] = ["type", "object"]
private let bookmarkMembers: [StaticString] = ["metadata"]
private let bookmarkMetadataMembers: [StaticString] = ["resourceVersion", "annotations"]

extension WatchEvent where Object: KubernetesReadable {
    /// Reads one watch event. `type` normally comes first; when `object` comes first it is read once the
    /// type is known. `memo`: the stream's, to reuse what earlier events were read as.
    public init<Bytes: Collection>(json bytes: Bytes, memo: ReadMemo? = nil) throws(JSONReader.Failure) where Bytes.Element == UInt8 {
        guard let memo else {
            self = try Self.read(bytes, memo: nil)
            return
        }
        // The memo keeps this document (shared, when it is an array) for the spans it remembers.
        memo.document = bytes as? [UInt8] ?? Array(bytes)
        defer { memo.document = [] }
        self = try Self.read(memo.document, memo: memo)
    }

    private static func read<Bytes: Collection>(_ bytes: Bytes, memo: ReadMemo?) throws(JSONReader.Failure) -> Self
    where Bytes.Element == UInt8 {
        try JSONReader.parse(bytes, memo: memo) { (reader: inout JSONReader) throws(JSONReader.Failure) in
            var type: String?
            var event: WatchEvent?
            var objectBeforeType: JSONReader?
            try reader.readMembers(eventMembers) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                if member == 0 {
                    type = try reader.readString()
                } else if let type {
                    event = try Self.readObject(of: type, &reader)
                } else {
                    objectBeforeType = reader
                    try reader.skipValue()
                }
            }
            guard let type else { throw reader.failure("watch event has no type") }
            if event == nil, var deferred = objectBeforeType { event = try Self.readObject(of: type, &deferred) }
            guard let event else { throw reader.failure("watch event has no object") }
            return event
        }
    }

    private static func readObject(of type: String, _ reader: inout JSONReader) throws(JSONReader.Failure) -> WatchEvent {
        switch type {
        case "ADDED": return .added(try Object(reading: &reader))
        case "MODIFIED": return .modified(try Object(reading: &reader))
        case "DELETED": return .deleted(try Object(reading: &reader))
        case "BOOKMARK":
            var version: String?
            var annotations: [String: String]?
            try reader.readMembers(bookmarkMembers) { (reader: inout JSONReader, _: Int) throws(JSONReader.Failure) in
                try reader.readMembers(bookmarkMetadataMembers) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                    if member == 0 { version = try reader.readStringOrNull() } else { annotations = try reader.readStringMapOrNull() }
                }
            }
            guard let version, !version.isEmpty else { throw reader.failure("bookmark without resourceVersion") }
            return .bookmark(resourceVersion: version, initialEventsEnd: annotations?["k8s.io/initial-events-end"] == "true")
        case "ERROR": return .error(try StatusObject(reading: &reader))
        default: throw reader.failure("unknown watch event type \(type.prefix(40))")
        }
    }
}

extension JSONReader {
    /// A list's `items`: each object's extent found first (an unvalidated skip), then the objects read
    /// on every core, each validated in full on its own; the array's own grammar is checked here. An
    /// item that is not an object is read in place (and fails as it should). A 500-slice page of 50,000
    /// endpoints is most of an initial list's CPU; this halves its wall time on two cores.
    mutating func readItems<Item: KubernetesReadable>(_ type: Item.Type) throws(Failure) -> [Item] {
        var found: [Range<Int>] = []
        var readInPlace: [Int: Item] = [:]
        guard
            try readArrayOrNull({ (reader: inout JSONReader) throws(Failure) in
                reader.skipWhitespace()
                let start = reader.offset
                if reader.skipObjectUnvalidated() {
                    found.append(start..<reader.offset)
                } else {
                    reader.rewind(to: start)
                    readInPlace[found.count] = try Item(reading: &reader)
                    found.append(start..<start)
                }
            }) != nil
        else { return [] }
        // Shared with the workers while they read (it outlives them).
        nonisolated(unsafe) let bytes = self.bytes
        let (spans, inPlace) = (found, readInPlace)
        let results = Array(spans.indices).concurrentMap(minimumPerWorker: 64) { index -> Result<Item, Failure> in
            if let item = inPlace[index] { return .success(item) }
            let span = spans[index]
            return Result { () throws(Failure) -> Item in
                do throws(Failure) {
                    return try Item(json: UnsafeBufferPointer(rebasing: bytes[span]))
                } catch {
                    throw Failure(message: error.message, offset: span.lowerBound + error.offset)
                }
            }
        }
        var items: [Item] = []
        items.reserveCapacity(spans.count)
        for result in results {
            items.append(try result.get())
        }
        return items
    }
}
