/// Why the server ends an xDS stream. Mapped to a gRPC status only at the edge (the transport).
public struct XDSError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// A malformed request: missing or unknown type URL, absurd names, a node that changes.
        case invalidArgument = "INVALID_ARGUMENT"
        /// Too many streams, names or bytes.
        case resourceExhausted = "RESOURCE_EXHAUSTED"
        /// The server cannot serve yet (not ready) or is shutting down.
        case unavailable = "UNAVAILABLE"
        /// The client's node id does not match its certificate (mutual TLS with node identity).
        case permissionDenied = "PERMISSION_DENIED"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension XDSError {
    /// How every stream ends at shutdown: clients reconnect to another replica.
    static let shuttingDown = XDSError(.unavailable, "the server is shutting down; reconnect to another replica")
}
