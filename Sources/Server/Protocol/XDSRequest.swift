/// A state-of-the-world `DiscoveryRequest` as the protocol machine reads it. Built at the serving edge
/// from the wire message (`XDSRequest+Envoy`), so the machines know no protobuf types.
public struct XDSRequest: Sendable, Equatable {
    /// Empty on a single-type stream (CDS, EDS), which implies its type.
    public var typeURL: String
    public var versionInfo: String
    public var resourceNames: [String]
    public var responseNonce: String
    /// The client, on the requests that carry it (Envoy and gRPC: the first of a stream).
    public var node: ClientNode?
    /// Set on a NACK: `error_detail.message` (possibly empty). nil on a request or an ACK.
    public var errorMessage: String?

    public init(
        typeURL: String = "", versionInfo: String = "", resourceNames: [String] = [], responseNonce: String = "", node: ClientNode? = nil,
        errorMessage: String? = nil
    ) {
        self.typeURL = typeURL
        self.versionInfo = versionInfo
        self.resourceNames = resourceNames
        self.responseNonce = responseNonce
        self.node = node
        self.errorMessage = errorMessage
    }
}
