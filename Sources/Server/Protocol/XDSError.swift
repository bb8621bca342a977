/// Why the server ends an xDS stream. Mapped to a gRPC status only at the edge (`XDSService`).
public struct XDSError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// A malformed request: missing or unknown type URL, absurd names, a node that changes.
        case invalidArgument = "INVALID_ARGUMENT"
        /// Too many streams, names or bytes.
        case resourceExhausted = "RESOURCE_EXHAUSTED"
        /// The server cannot serve yet (not ready) or is shutting down.
        case unavailable = "UNAVAILABLE"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
