/// Why a value from outside (a Kubernetes object, a Redis record, a config file) could not become part of
/// Legation's model. Carries a message meant for an operator's log; never a reason to crash.
public struct ModelError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String { case invalidName, invalidAddress, invalidPort, invalidField, tooLarge, badRecord, unsupportedSchema }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A cluster, namespace, service or port name that is not a DNS label.
        public static let invalidName = Code(.invalidName)
        /// An endpoint address that is not an IPv4 or IPv6 address.
        public static let invalidAddress = Code(.invalidAddress)
        /// A port number outside 1...65535, or a port mapping that does not fit the service's ports.
        public static let invalidPort = Code(.invalidPort)
        /// Any other field with a value the model does not accept.
        public static let invalidField = Code(.invalidField)
        /// More endpoints, ports or bytes than the model's limits allow.
        public static let tooLarge = Code(.tooLarge)
        /// A stored record that cannot be decoded, or whose content hash does not match its content.
        public static let badRecord = Code(.badRecord)
        /// A stored record written with a schema version this build does not know (a newer writer).
        public static let unsupportedSchema = Code(.unsupportedSchema)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
