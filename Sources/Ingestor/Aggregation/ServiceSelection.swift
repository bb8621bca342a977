/// Which services of a cluster Legation exports (design §4): by namespace, by label selector, and
/// optionally only those that opt in with an annotation.
public struct ServiceSelection: Sendable, Equatable {
    /// Only these namespaces (empty: all).
    public var includeNamespaces: Set<String>
    /// Never these namespaces (applied after `includeNamespaces`).
    public var excludeNamespaces: Set<String>
    public var labelSelector: LabelSelector
    /// When set, only services with this annotation set to `"true"` are exported.
    public var requiredAnnotation: String?

    /// The annotation of the opt-in mode.
    public static let exportAnnotation = "legation.io/export"

    public init(
        includeNamespaces: Set<String> = [], excludeNamespaces: Set<String> = ["kube-system"],
        labelSelector: LabelSelector = .everything, requiredAnnotation: String? = nil
    ) {
        self.includeNamespaces = includeNamespaces
        self.excludeNamespaces = excludeNamespaces
        self.labelSelector = labelSelector
        self.requiredAnnotation = requiredAnnotation
    }

    /// Whether a namespace is watched at all.
    public func includes(namespace: String) -> Bool {
        (includeNamespaces.isEmpty || includeNamespaces.contains(namespace)) && !excludeNamespaces.contains(namespace)
    }

    /// Whether a service is exported. ExternalName services never are: they have no endpoints.
    public func exports(_ service: ServiceObject) -> Bool {
        guard includes(namespace: service.metadata.namespace ?? ""), service.spec?.type != "ExternalName" else { return false }
        guard labelSelector.matches(service.metadata.labels ?? [:]) else { return false }
        if let requiredAnnotation {
            return service.metadata.annotations?[requiredAnnotation] == "true"
        }
        return true
    }
}
