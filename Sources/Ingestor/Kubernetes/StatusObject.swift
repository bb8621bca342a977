/// A Kubernetes `Status` object: what the API server answers with on errors (as an HTTP body, or as the
/// object of an `ERROR` watch event).
public struct StatusObject: Sendable, Equatable, CustomStringConvertible {
    public var status: String?
    public var message: String?
    public var reason: String?
    public var code: Int?

    /// `410 Gone` / reason `Expired` or `Gone`: the resource version is too old; relist.
    public var isExpired: Bool { code == 410 || reason == "Expired" || reason == "Gone" }

    public var description: String {
        "\(code.map(String.init) ?? "?") \(reason ?? ""): \(message ?? "")"
    }
}
