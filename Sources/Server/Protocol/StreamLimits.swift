/// Bounds on what one client may ask of one stream; beyond them the stream ends with a clear status.
public struct StreamLimits: Sendable, Hashable, Codable {
    /// Most resource names one request may subscribe to.
    public var maximumResourceNames = 100_000
    /// Longest resource name, in bytes.
    public var maximumResourceNameBytes = 1024
    /// Longest node id or cluster, in bytes.
    public var maximumNodeFieldBytes = 1024
    /// Longest NACK message kept for debug output; longer ones are cut.
    public var maximumErrorMessageBytes = 2048

    public init() {}
}
