/// An incremental `DeltaDiscoveryRequest` as the delta machine reads it.
public struct DeltaXDSRequest: Sendable, Equatable {
    public var typeURL: String
    public var subscribe: [String]
    public var unsubscribe: [String]
    /// What the client holds when it (re)connects: name → version.
    public var initialResourceVersions: [String: String]
    public var responseNonce: String
    public var node: ClientNode?
    /// Set on a NACK: `error_detail.message` (possibly empty).
    public var errorMessage: String?

    public init(
        typeURL: String = "", subscribe: [String] = [], unsubscribe: [String] = [], initialResourceVersions: [String: String] = [:],
        responseNonce: String = "", node: ClientNode? = nil, errorMessage: String? = nil
    ) {
        self.typeURL = typeURL
        self.subscribe = subscribe
        self.unsubscribe = unsubscribe
        self.initialResourceVersions = initialResourceVersions
        self.responseNonce = responseNonce
        self.node = node
        self.errorMessage = errorMessage
    }
}
