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

    public struct Endpoint: Decodable, Sendable, Equatable {
        public var addresses: [String]
        public var conditions: Conditions?
        public var hostname: String?
        public var targetRef: ObjectReference?
        public var nodeName: String?
        public var zone: String?
        public var deprecatedTopology: [String: String]?
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
