/// `v1` Service.
public struct ServiceObject: Sendable, Equatable {
    public struct Port: Sendable, Equatable {
        public var name: String?
        public var `protocol`: String?
        public var port: Int
        public var appProtocol: String?
    }

    public struct Spec: Sendable, Equatable {
        public var ports: [Port]?
        public var type: String?
        public var clusterIP: String?
    }

    public var metadata: ObjectMeta
    public var spec: Spec?
}
