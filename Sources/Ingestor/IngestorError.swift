/// Why the ingestor could not do something: use its configuration or kubeconfig, obtain a token, reach
/// the API server or understand its answer. One error type for the layer (as grpc-swift's `RPCError`):
/// a code to act on, a message for operators, and the API server's `Status` when it answered with one.
public struct IngestorError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String { case configuration, authentication, unreachable, refused, malformed }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// The configuration, the kubeconfig or TLS material cannot be used: fix them and restart.
        public static let configuration = Code(.configuration)
        /// No credentials could be had (a token file, an exec plugin, AWS STS).
        public static let authentication = Code(.authentication)
        /// The API server could not be reached, or did not answer in time.
        public static let unreachable = Code(.unreachable)
        /// The API server answered with an error status (`status`, `httpStatus`).
        public static let refused = Code(.refused)
        /// An answer could not be read (not the JSON expected, too large, cut short).
        public static let malformed = Code(.malformed)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String
    /// The API server's Status answer, when there was one.
    public var status: StatusObject?
    public var httpStatus: Int?

    public init(_ code: Code, _ message: String, status: StatusObject? = nil, httpStatus: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.httpStatus = httpStatus
    }

    /// The resource version asked for is too old (410 Gone): relist.
    public var isExpired: Bool { status?.isExpired == true || httpStatus == 410 }

    public var description: String {
        var text = "\(code): \(message)"
        if let httpStatus { text += " (HTTP \(httpStatus))" }
        if let status { text += ": \(status)" }
        return text
    }
}
