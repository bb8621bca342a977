import EnvoyAPI

/// Who is on the other end of a stream, from the `node` of its first request.
public struct ClientNode: Sendable, Hashable, Codable {
    public var id: String
    public var cluster: String
    public var region: String
    public var zone: String
    public var subZone: String
    /// `envoy 1.40.0`, `grpc-python 1.85.3`, …
    public var userAgent: String

    public init(id: String = "", cluster: String = "", region: String = "", zone: String = "", subZone: String = "", userAgent: String = "") {
        self.id = id
        self.cluster = cluster
        self.region = region
        self.zone = zone
        self.subZone = subZone
        self.userAgent = userAgent
    }

    init(_ node: Envoy_Config_Core_V3_Node) {
        var version = ""
        switch node.userAgentVersionType {
        case .userAgentVersion(let text)?: version = text
        case .userAgentBuildVersion(let build)?:
            version = "\(build.version.majorNumber).\(build.version.minorNumber).\(build.version.patch)"
        default: break
        }
        self.init(
            id: node.id, cluster: node.cluster, region: node.locality.region, zone: node.locality.zone,
            subZone: node.locality.subZone,
            userAgent: [node.userAgentName, version].filter { !$0.isEmpty }.joined(separator: " "))
    }
}
