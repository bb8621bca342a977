/// The parts of Kubernetes objects the ingestor uses, read from the API's JSON by `JSONReader`
/// (`KubernetesObjects+JSONReader`). Everything else in the object is skipped. Optional wherever the API
/// may omit a field or send `null`.

/// `metadata` of any object.
public struct ObjectMeta: Sendable, Equatable {
    public var name: String
    public var namespace: String?
    public var resourceVersion: String?
    public var labels: [String: String]?
    public var annotations: [String: String]?
    public var deletionTimestamp: String?
}
