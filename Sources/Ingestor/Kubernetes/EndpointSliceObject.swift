/// `discovery.k8s.io/v1` EndpointSlice.
public struct EndpointSliceObject: Sendable, Equatable {
    public struct Conditions: Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
    }

    public struct ObjectReference: Sendable, Equatable {
        public var kind: String?
        public var namespace: String?
        public var name: String?
    }

    /// The fields live in one immutable box: a watch event's endpoint is copied several times on its
    /// way (memo, slice, aggregator), one retain per copy instead of one per field. Setting a field
    /// boxes a changed copy (a `var` in the box would cost an exclusivity check on every read). The
    /// fields read and write through the box by name (`endpoint.zone`).
    @dynamicMemberLookup
    public struct Endpoint: Sendable, Equatable {
        public struct Fields: Sendable, Equatable {
            public var addresses: [String]
            public var conditions: Conditions?
            public var hostname: String?
            public var targetRef: ObjectReference?
            public var nodeName: String?
            public var zone: String?
            public var deprecatedTopology: [String: String]?
        }

        private final class Box: Sendable {
            let fields: Fields
            init(_ fields: Fields) { self.fields = fields }
        }

        private var box: Box

        private var fields: Fields {
            get { box.fields }
            set { box = Box(newValue) }
        }

        public init(
            addresses: [String], conditions: Conditions? = nil, hostname: String? = nil, targetRef: ObjectReference? = nil,
            nodeName: String? = nil, zone: String? = nil, deprecatedTopology: [String: String]? = nil
        ) {
            box = Box(
                Fields(
                    addresses: addresses, conditions: conditions, hostname: hostname, targetRef: targetRef, nodeName: nodeName, zone: zone,
                    deprecatedTopology: deprecatedTopology))
        }

        public subscript<Value>(dynamicMember field: WritableKeyPath<Fields, Value>) -> Value {
            get { box.fields[keyPath: field] }
            set { fields[keyPath: field] = newValue }
        }

        public static func == (lhs: Endpoint, rhs: Endpoint) -> Bool {
            lhs.box === rhs.box || lhs.box.fields == rhs.box.fields
        }

        /// Whether both are the same value, not just equal: the watch memo hands out the value it read
        /// before for bytes that did not change, so the aggregator knows an unchanged endpoint at the
        /// cost of a pointer comparison. (Equal values read separately are not identical.)
        func isIdentical(to other: Endpoint) -> Bool { box === other.box }
    }

    public struct Port: Sendable, Equatable {
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
