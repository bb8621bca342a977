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
