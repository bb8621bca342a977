import Foundation

/// The ingestor's Kubernetes objects read straight from JSON bytes by `JSONReader` (the hot path). A
/// differential test (`JSONReaderTests`, against Foundation's `JSONDecoder` through conformances that
/// exist only in the tests) holds both readings equal on every fixture and on mutated input: same
/// value, or both rejected (this reader is stricter: a member it reads twice in one object, and a string
/// anywhere with invalid UTF-8, a raw control character or a bad escape, are errors).

extension ObjectMeta: KubernetesReadable {
    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var name: String?
        var namespace: String?, resourceVersion: String?, deletionTimestamp: String?
        var labels: [String: String]?, annotations: [String: String]?
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "name" { guard seen.first(0) else { throw reader.duplicate(key) }; name = try reader.readString() }
            else if key == "namespace" { guard seen.first(1) else { throw reader.duplicate(key) }; namespace = try reader.readStringOrNull() }
            else if key == "resourceVersion" { guard seen.first(2) else { throw reader.duplicate(key) }; resourceVersion = try reader.readStringOrNull() }
            else if key == "labels" { guard seen.first(3) else { throw reader.duplicate(key) }; labels = try reader.readStringMapOrNull() }
            else if key == "annotations" { guard seen.first(4) else { throw reader.duplicate(key) }; annotations = try reader.readStringMapOrNull() }
            else if key == "deletionTimestamp" { guard seen.first(5) else { throw reader.duplicate(key) }; deletionTimestamp = try reader.readStringOrNull() }
            else { try reader.skipValue() }
        }
        guard let name else { throw reader.failure("metadata has no name") }
        self.init(name: name, namespace: namespace, resourceVersion: resourceVersion, labels: labels, annotations: annotations, deletionTimestamp: deletionTimestamp)
    }
}

extension EndpointSliceObject: KubernetesReadable {
    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var metadata: ObjectMeta?
        var addressType: String?
        var endpoints: [Endpoint]?
        var ports: [Port]?
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "metadata" { guard seen.first(0) else { throw reader.duplicate(key) }; metadata = try ObjectMeta(reading: &reader) }
            else if key == "addressType" { guard seen.first(1) else { throw reader.duplicate(key) }; addressType = try reader.readString() }
            else if key == "endpoints" { guard seen.first(2) else { throw reader.duplicate(key) }
                // With a memo and the slice's name already read, an endpoint whose bytes equal one of
                // last time's (the next position first: the same endpoints in the same order, as
                // usual; then a step or two off) is not read: that value is handed out again.
                guard let memo = reader.memo, let metadata, !memo.document.isEmpty else {
                    endpoints = try reader.readArrayOrNull { (reader: inout JSONReader) throws(JSONReader.Failure) in try Endpoint(reading: &reader) }
                    return
                }
                let memoKey = "\(metadata.namespace ?? "")/\(metadata.name)"
                let previous = memo.slices.removeValue(forKey: memoKey) ?? ReadMemo.Slice()
                var current = ReadMemo.Slice(document: memo.document)
                endpoints = try reader.readEndpoints(remembering: previous, into: &current)
                memo.slices[memoKey] = current
            }
            else if key == "ports" { guard seen.first(3) else { throw reader.duplicate(key) }; ports = try reader.readArrayOrNull { (reader: inout JSONReader) throws(JSONReader.Failure) in try Port(reading: &reader) } }
            else { try reader.skipValue() }
        }
        guard let metadata else { throw reader.failure("EndpointSlice has no metadata") }
        guard let addressType else { throw reader.failure("EndpointSlice has no addressType") }
        self.init(metadata: metadata, addressType: addressType, endpoints: endpoints, ports: ports)
    }
}

extension EndpointSliceObject.Endpoint {
    init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var addresses: [String]?
        var conditions: EndpointSliceObject.Conditions?
        var hostname: String?, nodeName: String?, zone: String?
        var targetRef: EndpointSliceObject.ObjectReference?
        var deprecatedTopology: [String: String]?
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "addresses" { guard seen.first(0) else { throw reader.duplicate(key) }
                var list: [String] = []
                try reader.readArray { (reader: inout JSONReader) throws(JSONReader.Failure) in list.append(try reader.readString()) }
                addresses = list
            } else if key == "conditions" { guard seen.first(1) else { throw reader.duplicate(key) }
                var value = EndpointSliceObject.Conditions()
                var seen = JSONReader.SeenKeys()
                if try reader.readObjectOrNull({ (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                    if key == "ready" { guard seen.first(0) else { throw reader.duplicate(key) }; value.ready = try reader.readBoolOrNull() }
                    else if key == "serving" { guard seen.first(1) else { throw reader.duplicate(key) }; value.serving = try reader.readBoolOrNull() }
                    else if key == "terminating" { guard seen.first(2) else { throw reader.duplicate(key) }; value.terminating = try reader.readBoolOrNull() }
                    else { try reader.skipValue() }
                }) { conditions = value }
            } else if key == "hostname" { guard seen.first(2) else { throw reader.duplicate(key) }; hostname = try reader.readStringOrNull() }
            else if key == "nodeName" { guard seen.first(3) else { throw reader.duplicate(key) }; nodeName = try reader.readStringOrNull() }
            else if key == "zone" { guard seen.first(4) else { throw reader.duplicate(key) }; zone = try reader.readStringOrNull() }
            else if key == "targetRef" { guard seen.first(5) else { throw reader.duplicate(key) }
                var value = EndpointSliceObject.ObjectReference()
                var seen = JSONReader.SeenKeys()
                if try reader.readObjectOrNull({ (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                    if key == "kind" { guard seen.first(0) else { throw reader.duplicate(key) }; value.kind = try reader.readStringOrNull() }
                    else if key == "namespace" { guard seen.first(1) else { throw reader.duplicate(key) }; value.namespace = try reader.readStringOrNull() }
                    else if key == "name" { guard seen.first(2) else { throw reader.duplicate(key) }; value.name = try reader.readStringOrNull() }
                    else { try reader.skipValue() }
                }) { targetRef = value }
            } else if key == "deprecatedTopology" { guard seen.first(6) else { throw reader.duplicate(key) }; deprecatedTopology = try reader.readStringMapOrNull() }
            else { try reader.skipValue() }
        }
        guard let addresses else { throw reader.failure("endpoint has no addresses") }
        self.init(addresses: addresses, conditions: conditions, hostname: hostname, targetRef: targetRef, nodeName: nodeName, zone: zone, deprecatedTopology: deprecatedTopology)
    }
}

extension EndpointSliceObject.Port {
    init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var value = Self()
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "name" { guard seen.first(0) else { throw reader.duplicate(key) }; value.name = try reader.readStringOrNull() }
            else if key == "protocol" { guard seen.first(1) else { throw reader.duplicate(key) }; value.protocol = try reader.readStringOrNull() }
            else if key == "port" { guard seen.first(2) else { throw reader.duplicate(key) }; value.port = try reader.readIntOrNull() }
            else if key == "appProtocol" { guard seen.first(3) else { throw reader.duplicate(key) }; value.appProtocol = try reader.readStringOrNull() }
            else { try reader.skipValue() }
        }
        self = value
    }
}

extension ServiceObject: KubernetesReadable {
    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var metadata: ObjectMeta?
        var spec: Spec?
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "metadata" { guard seen.first(0) else { throw reader.duplicate(key) }; metadata = try ObjectMeta(reading: &reader) }
            else if key == "spec" { guard seen.first(1) else { throw reader.duplicate(key) }
                var value = Spec()
                var seen = JSONReader.SeenKeys()
                if try reader.readObjectOrNull({ (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                    if key == "ports" { guard seen.first(0) else { throw reader.duplicate(key) }; value.ports = try reader.readArrayOrNull { (reader: inout JSONReader) throws(JSONReader.Failure) in try Port(reading: &reader) } }
                    else if key == "type" { guard seen.first(1) else { throw reader.duplicate(key) }; value.type = try reader.readStringOrNull() }
                    else if key == "clusterIP" { guard seen.first(2) else { throw reader.duplicate(key) }; value.clusterIP = try reader.readStringOrNull() }
                    else { try reader.skipValue() }
                }) { spec = value }
            } else { try reader.skipValue() }
        }
        guard let metadata else { throw reader.failure("Service has no metadata") }
        self.init(metadata: metadata, spec: spec)
    }
}

extension ServiceObject.Port {
    init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var name: String?, transport: String?, appProtocol: String?
        var port: Int?
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "name" { guard seen.first(0) else { throw reader.duplicate(key) }; name = try reader.readStringOrNull() }
            else if key == "protocol" { guard seen.first(1) else { throw reader.duplicate(key) }; transport = try reader.readStringOrNull() }
            else if key == "port" { guard seen.first(2) else { throw reader.duplicate(key) }; port = try reader.readInt() }
            else if key == "appProtocol" { guard seen.first(3) else { throw reader.duplicate(key) }; appProtocol = try reader.readStringOrNull() }
            else { try reader.skipValue() }
        }
        guard let port else { throw reader.failure("service port has no port number") }
        self.init(name: name, protocol: transport, port: port, appProtocol: appProtocol)
    }
}

extension StatusObject: KubernetesReadable {
    public init(reading reader: inout JSONReader) throws(JSONReader.Failure) {
        var value = Self()
        var seen = JSONReader.SeenKeys()
        try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
            if key == "status" { guard seen.first(0) else { throw reader.duplicate(key) }; value.status = try reader.readStringOrNull() }
            else if key == "message" { guard seen.first(1) else { throw reader.duplicate(key) }; value.message = try reader.readStringOrNull() }
            else if key == "reason" { guard seen.first(2) else { throw reader.duplicate(key) }; value.reason = try reader.readStringOrNull() }
            else if key == "code" { guard seen.first(3) else { throw reader.duplicate(key) }; value.code = try reader.readIntOrNull() }
            else { try reader.skipValue() }
        }
        self = value
    }
}

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

    private static func read<Bytes: Collection>(_ bytes: Bytes, memo: ReadMemo?) throws(JSONReader.Failure) -> Self where Bytes.Element == UInt8 {
        try JSONReader.parse(bytes, memo: memo) { (reader: inout JSONReader) throws(JSONReader.Failure) in
            var type: String?
            var event: WatchEvent?
            var objectBeforeType: JSONReader?
            var seen = JSONReader.SeenKeys()
            try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                if key == "type" { guard seen.first(0) else { throw reader.duplicate(key) }
                    type = try reader.readString()
                } else if key == "object" { guard seen.first(1) else { throw reader.duplicate(key) }
                    if let type {
                        event = try Self.readObject(of: type, &reader)
                    } else {
                        objectBeforeType = reader
                        try reader.skipValue()
                    }
                } else {
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
            var seenMetadata = false
            try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                guard key == "metadata" else { return try reader.skipValue() }
                guard !seenMetadata else { throw reader.duplicate(key) }
                seenMetadata = true
                var seen = JSONReader.SeenKeys()
                try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                    if key == "resourceVersion" { guard seen.first(0) else { throw reader.duplicate(key) }; version = try reader.readStringOrNull() }
                    else if key == "annotations" { guard seen.first(1) else { throw reader.duplicate(key) }; annotations = try reader.readStringMapOrNull() }
                    else { try reader.skipValue() }
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
        guard try readArrayOrNull({ (reader: inout JSONReader) throws(Failure) in
            reader.skipWhitespace()
            let start = reader.offset
            if reader.skipObjectUnvalidated() {
                found.append(start..<reader.offset)
            } else {
                reader.rewind(to: start)
                readInPlace[found.count] = try Item(reading: &reader)
                found.append(start..<start)
            }
        }) != nil else { return [] }
        // Shared with the workers for the duration of `concurrentPerform` only, each index written by one.
        nonisolated(unsafe) let bytes = self.bytes
        let (spans, inPlace) = (found, readInPlace)
        let workers = Swift.min(ProcessInfo.processInfo.activeProcessorCount, spans.count / 64 + 1)
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Result<Item, Failure>?>.allocate(capacity: spans.count)
        results.initialize(repeating: nil)
        defer {
            results.deinitialize()
            results.deallocate()
        }
        @Sendable func read(_ worker: Int) {
            for index in stride(from: worker, to: spans.count, by: workers) {
                if let item = inPlace[index] {
                    results[index] = .success(item)
                    continue
                }
                let span = spans[index]
                results[index] = Result { () throws(Failure) -> Item in
                    do throws(Failure) {
                        return try Item(json: UnsafeBufferPointer(rebasing: bytes[span]))
                    } catch {
                        throw Failure(message: error.message, offset: span.lowerBound + error.offset)
                    }
                }
            }
        }
        if workers > 1 {
            DispatchQueue.concurrentPerform(iterations: workers) { read($0) }
        } else {
            read(0)
        }
        var items: [Item] = []
        items.reserveCapacity(spans.count)
        for result in results {
            items.append(try result!.get())
        }
        return items
    }
}
