/// The parts of Kubernetes objects the ingestor uses, decoded from the API's JSON. Everything else in
/// the object is skipped. Optional wherever the API may omit a field or send `null`.

/// `metadata` of any object.
public struct ObjectMeta: Decodable, Sendable, Equatable {
    public var name: String
    public var namespace: String?
    public var resourceVersion: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var deletionTimestamp: String?
}

/// `discovery.k8s.io/v1` EndpointSlice.
public struct EndpointSliceObject: Decodable, Sendable, Equatable {
    public struct Conditions: Decodable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
    }

    public struct ObjectReference: Decodable, Sendable, Equatable {
        public var kind: String?
        public var namespace: String?
        public var name: String?
    }

    /// The fields live in one immutable box: a watch event's endpoint is copied several times on its
    /// way (memo, slice, aggregator), one retain per copy instead of one per field. Setting a field
    /// boxes a changed copy.
    public struct Endpoint: Decodable, Sendable, Equatable {
        private final class Box: Sendable {
            let addresses: [String]
            let conditions: Conditions?
            let hostname: String?
            let targetRef: ObjectReference?
            let nodeName: String?
            let zone: String?
            let deprecatedTopology: [String: String]?

            init(
                addresses: [String], conditions: Conditions?, hostname: String?, targetRef: ObjectReference?, nodeName: String?,
                zone: String?, deprecatedTopology: [String: String]?
            ) {
                (self.addresses, self.conditions, self.hostname, self.targetRef) = (addresses, conditions, hostname, targetRef)
                (self.nodeName, self.zone, self.deprecatedTopology) = (nodeName, zone, deprecatedTopology)
            }
        }

        private var box: Box

        public init(
            addresses: [String], conditions: Conditions? = nil, hostname: String? = nil, targetRef: ObjectReference? = nil,
            nodeName: String? = nil, zone: String? = nil, deprecatedTopology: [String: String]? = nil
        ) {
            box = Box(
                addresses: addresses, conditions: conditions, hostname: hostname, targetRef: targetRef, nodeName: nodeName, zone: zone,
                deprecatedTopology: deprecatedTopology)
        }

        private enum CodingKeys: String, CodingKey { case addresses, conditions, hostname, targetRef, nodeName, zone, deprecatedTopology }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                addresses: try container.decode([String].self, forKey: .addresses),
                conditions: try container.decodeIfPresent(Conditions.self, forKey: .conditions),
                hostname: try container.decodeIfPresent(String.self, forKey: .hostname),
                targetRef: try container.decodeIfPresent(ObjectReference.self, forKey: .targetRef),
                nodeName: try container.decodeIfPresent(String.self, forKey: .nodeName),
                zone: try container.decodeIfPresent(String.self, forKey: .zone),
                deprecatedTopology: try container.decodeIfPresent([String: String].self, forKey: .deprecatedTopology))
        }

        private mutating func change(_ edit: (inout Endpoint.Fields) -> Void) {
            var fields = Fields(
                addresses: box.addresses, conditions: box.conditions, hostname: box.hostname, targetRef: box.targetRef, nodeName: box.nodeName,
                zone: box.zone, deprecatedTopology: box.deprecatedTopology)
            edit(&fields)
            self = Endpoint(
                addresses: fields.addresses, conditions: fields.conditions, hostname: fields.hostname, targetRef: fields.targetRef,
                nodeName: fields.nodeName, zone: fields.zone, deprecatedTopology: fields.deprecatedTopology)
        }

        private struct Fields {
            var addresses: [String], conditions: Conditions?, hostname: String?, targetRef: ObjectReference?, nodeName: String?
            var zone: String?, deprecatedTopology: [String: String]?
        }

        public var addresses: [String] {
            get { box.addresses }
            set { change { $0.addresses = newValue } }
        }
        public var conditions: Conditions? {
            get { box.conditions }
            set { change { $0.conditions = newValue } }
        }
        public var hostname: String? {
            get { box.hostname }
            set { change { $0.hostname = newValue } }
        }
        public var targetRef: ObjectReference? {
            get { box.targetRef }
            set { change { $0.targetRef = newValue } }
        }
        public var nodeName: String? {
            get { box.nodeName }
            set { change { $0.nodeName = newValue } }
        }
        public var zone: String? {
            get { box.zone }
            set { change { $0.zone = newValue } }
        }
        public var deprecatedTopology: [String: String]? {
            get { box.deprecatedTopology }
            set { change { $0.deprecatedTopology = newValue } }
        }

        public static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
            lhs.box === rhs.box
                || (lhs.addresses == rhs.addresses && lhs.conditions == rhs.conditions && lhs.hostname == rhs.hostname
                    && lhs.targetRef == rhs.targetRef && lhs.nodeName == rhs.nodeName && lhs.zone == rhs.zone
                    && lhs.deprecatedTopology == rhs.deprecatedTopology)
        }
    }

    public struct Port: Decodable, Sendable, Equatable {
        public var name: String?
        public var `protocol`: String?
        public var port: Int?
        public var appProtocol: String?
    }

    public var metadata: ObjectMeta
    public var addressType: String
    public var endpoints: [Endpoint]?
    public var ports: [Port]?
    /// A digest of each endpoint's JSON bytes, index-aligned with `endpoints`, when read by
    /// `JSONReader` (empty when decoded otherwise): the aggregator reuses what it made of an endpoint
    /// whose bytes did not change. Not content: ignored by `==`.
    public var endpointDigests = ReadingDigests()

    private enum CodingKeys: String, CodingKey { case metadata, addressType, endpoints, ports }

    /// The service this slice belongs to (label `kubernetes.io/service-name`).
    public var serviceName: String? { metadata.labels?["kubernetes.io/service-name"] }
}

/// `v1` Service.
public struct ServiceObject: Decodable, Sendable, Equatable {
    public struct Port: Decodable, Sendable, Equatable {
        public var name: String?
        public var `protocol`: String?
        public var port: Int
        public var appProtocol: String?
    }

    public struct Spec: Decodable, Sendable, Equatable {
        public var ports: [Port]?
        public var type: String?
        public var clusterIP: String?
    }

    public var metadata: ObjectMeta
    public var spec: Spec?
}

/// Digests of raw input kept beside decoded content to skip repeated work. Every value compares equal
/// and hashes the same: they say how an object was read, not what it holds.
public struct ReadingDigests: Sendable, Hashable {
    public var values: [UInt64] = []
    public init(_ values: [UInt64] = []) { self.values = values }
    public static func == (lhs: ReadingDigests, rhs: ReadingDigests) -> Bool { true }
    public func hash(into hasher: inout Hasher) {}
}
