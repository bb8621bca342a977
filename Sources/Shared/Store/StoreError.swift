/// An error of the store layer (Redis or in-memory). Mapped to a gRPC status or an HTTP answer only at
/// the edge. Every error here is recoverable by retrying, resyncing or re-acquiring the lease.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case unavailable, timeout, staleEpoch, noLease, generationChanged, protocolError, authentication, badRecord, configuration
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The store cannot be reached (connection refused, lost, or backing off before reconnecting).
        public static let unavailable = Code(.unavailable)
        /// The store did not answer within the command timeout; the connection was closed.
        public static let timeout = Code(.timeout)
        /// A write with a fencing epoch older than the source's current one: another writer took over.
        public static let staleEpoch = Code(.staleEpoch)
        /// A write for a source whose epoch is unknown: its lease was never taken, or the data was lost.
        public static let noLease = Code(.noLease)
        /// The source's generation changed under the writer (data lost): it must republish everything.
        public static let generationChanged = Code(.generationChanged)
        /// The store answered something this client does not understand.
        public static let protocolError = Code(.protocolError)
        /// The store refused the credentials (AUTH, ACL) or a command for lack of permission.
        public static let authentication = Code(.authentication)
        /// A stored record or entry that cannot be decoded.
        public static let badRecord = Code(.badRecord)
        /// A configuration the store cannot use (bad URL, unreadable certificate).
        public static let configuration = Code(.configuration)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(code): \(message) (\(cause))" }
        return "\(code): \(message)"
    }
}
