/// Who is on the other end of a stream, from the `node` of its first request (read from the wire at
/// the serving edge: `ClientNode+Envoy`).
public struct ClientNode: Sendable, Hashable, Codable {
    public var id: String
    public var cluster: String
    public var region: String
    public var zone: String
    public var subZone: String
    /// `envoy 1.40.0`, `grpc-python 1.85.3`, …
    public var userAgent: String

    public init(id: String = "", cluster: String = "", region: String = "", zone: String = "", subZone: String = "", userAgent: String = "")
    {
        self.id = id
        self.cluster = cluster
        self.region = region
        self.zone = zone
        self.subZone = subZone
        self.userAgent = userAgent
    }
}
