import Shared

/// A kind of Kubernetes object the source lists and watches, and how each reaches the aggregator: the
/// source follows each kind through this, generically, without recovering types at runtime.
protocol FollowedObject: KubernetesReadable, ResourceVersioned {
    /// The API resource (`services`, `endpointslices`): the metric dimension and log field.
    static var resource: String { get }
    /// The collection's path, cluster-wide (nil) or in one namespace.
    static func path(namespace: String?) -> String
    /// A (re)list: every object of this kind. - Returns: what was skipped, to report.
    static func replaceAll(_ items: [Self], in aggregator: inout EndpointSliceAggregator) -> [EndpointSliceAggregator.Rejection]
    static func upsert(_ object: Self, into aggregator: inout EndpointSliceAggregator) -> (
        changes: [EndpointChange], rejections: [EndpointSliceAggregator.Rejection]
    )
    static func delete(_ object: Self, from aggregator: inout EndpointSliceAggregator) -> [EndpointChange]
    /// When the EndpointSlice controller last changed it (`endpoints.kubernetes.io/last-change-trigger-time`).
    var lastChangeTriggerTime: String? { get }
}

extension ServiceObject: FollowedObject {
    static var resource: String { "services" }

    static func path(namespace: String?) -> String {
        namespace.map { "/api/v1/namespaces/\($0)/services" } ?? "/api/v1/services"
    }

    static func replaceAll(_ items: [ServiceObject], in aggregator: inout EndpointSliceAggregator) -> [EndpointSliceAggregator.Rejection] {
        aggregator.replace(services: items)
    }

    static func upsert(_ object: ServiceObject, into aggregator: inout EndpointSliceAggregator)
        -> (changes: [EndpointChange], rejections: [EndpointSliceAggregator.Rejection])
    {
        aggregator.upsert(service: object)
    }

    static func delete(_ object: ServiceObject, from aggregator: inout EndpointSliceAggregator) -> [EndpointChange] {
        aggregator.delete(service: object)
    }

    var lastChangeTriggerTime: String? { nil }
}

extension EndpointSliceObject: FollowedObject {
    static var resource: String { "endpointslices" }

    static func path(namespace: String?) -> String {
        namespace.map { "/apis/discovery.k8s.io/v1/namespaces/\($0)/endpointslices" } ?? "/apis/discovery.k8s.io/v1/endpointslices"
    }

    static func replaceAll(_ items: [EndpointSliceObject], in aggregator: inout EndpointSliceAggregator) -> [EndpointSliceAggregator
        .Rejection]
    {
        aggregator.replace(slices: items)
    }

    static func upsert(_ object: EndpointSliceObject, into aggregator: inout EndpointSliceAggregator)
        -> (changes: [EndpointChange], rejections: [EndpointSliceAggregator.Rejection])
    {
        aggregator.upsert(slice: object)
    }

    static func delete(_ object: EndpointSliceObject, from aggregator: inout EndpointSliceAggregator) -> [EndpointChange] {
        aggregator.delete(slice: object)
    }

    var lastChangeTriggerTime: String? { metadata.annotations?["endpoints.kubernetes.io/last-change-trigger-time"] }
}
