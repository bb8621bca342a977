import EnvoyAPI
import Shared
import SwiftProtobuf

/// Builds the Envoy resources of one cluster (namespace, service, port) from the merged index.
///
/// Pure and deterministic: the same index and options give the same bytes, hence the same versions,
/// on every replica.
public struct ResourceBuilder: Sendable {
    /// The metadata namespace carrying where an endpoint comes from: `{source, pod, node}`.
    public static let metadataNamespace = "legation"
    static let httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

    public let options: ResourceOptions

    public init(options: ResourceOptions = ResourceOptions()) {
        self.options = options
    }

    /// The `Cluster`: EDS over ADS, HTTP/2 upstream when the port's `appProtocol` says gRPC or h2c.
    public func cluster(_ key: ClusterKey, port: ServicePort) -> Envoy_Config_Cluster_V3_Cluster {
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = key.name
        cluster.type = .eds
        var eds = Envoy_Config_Cluster_V3_Cluster.EdsClusterConfig()
        var source = Envoy_Config_Core_V3_ConfigSource()
        source.ads = Envoy_Config_Core_V3_AggregatedConfigSource()
        source.resourceApiVersion = .v3
        eds.edsConfig = source
        cluster.edsClusterConfig = eds
        let timeout = options.connectTimeoutMilliseconds
        cluster.connectTimeout = .with {
            $0.seconds = Int64(timeout / 1000)
            $0.nanos = Int32(timeout % 1000) * 1_000_000
        }
        cluster.lbPolicy =
            switch options.loadBalancing {
            case .roundRobin: .roundRobin
            case .leastRequest: .leastRequest
            case .random: .random
            case .ringHash: .ringHash
            case .maglev: .maglev
            }
        if port.isHTTP2 {
            var protocolOptions = Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions()
            var explicit = Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions.ExplicitHttpConfig()
            explicit.http2ProtocolOptions = Envoy_Config_Core_V3_Http2ProtocolOptions()
            protocolOptions.explicitHTTPConfig = explicit
            if let any = try? Google_Protobuf_Any(message: protocolOptions) {
                cluster.typedExtensionProtocolOptions[Self.httpProtocolOptionsKey] = any
            }
        }
        return cluster
    }

    /// The `ClusterLoadAssignment`, encoded by hand: one locality per (zone, source cluster), the source
    /// cluster as sub-zone, weighted by its endpoints; ready → HEALTHY, serving and terminating → DRAINING,
    /// not serving → left out (or UNHEALTHY); each endpoint's metadata names its source cluster, pod and
    /// node. Byte for byte what SwiftProtobuf writes for the same message with deterministic ordering
    /// (ResourceBuilderTests compares them over many random clusters), at a fraction of the cost:
    /// profiling a cold start with 50,000 endpoints showed two thirds of it in SwiftProtobuf sizing and
    /// encoding each endpoint's metadata `Struct`.
    public func loadAssignmentBytes(_ key: ClusterKey, members: [EndpointIndex.Member]) -> [UInt8] {
        loadAssignmentParts(key, members: members).bytes
    }

    /// The encoded load assignment (every locality at priority 0), with where each locality's fields lie
    /// in it, for `LocalityPriorities` to assemble the variants with priorities from.
    public func loadAssignmentParts(_ key: ClusterKey, members: [EndpointIndex.Member])
        -> (bytes: [UInt8], headEnd: Int, localities: [LocalityPriorities.Locality])
    {
        var byLocality: [LocalityKey: (count: Int, bytes: [UInt8])] = [:]
        for member in members {
            guard let health = EndpointHealth.of(member.endpoint.conditions, keepUnready: options.keepUnservingEndpoints) else {
                continue
            }
            let locality = LocalityKey(zone: member.endpoint.zone, source: member.source)
            byLocality[locality, default: (0, [])].count += 1
            Self.appendLbEndpoint(member, health: health, to: &byLocality[locality, default: (0, [])].bytes)
        }
        var out: [UInt8] = []
        WireFormat.appendString(1, key.name, to: &out)
        let headEnd = out.count
        var localities: [LocalityPriorities.Locality] = []
        localities.reserveCapacity(byLocality.count)
        for (locality, endpoints) in byLocality.sorted(by: { $0.key < $1.key }) {
            let region = Self.region(ofZone: locality.zone)
            var place: [UInt8] = []
            WireFormat.appendString(1, region, to: &place)
            WireFormat.appendString(2, locality.zone, to: &place)
            WireFormat.appendString(3, locality.source.name, to: &place)
            var weight: [UInt8] = []
            WireFormat.appendVarintField(1, UInt64(endpoints.count), to: &weight)
            var group: [UInt8] = []
            group.reserveCapacity(place.count + endpoints.bytes.count + weight.count + 8)
            WireFormat.appendLengthDelimited(1, place, to: &group)  // locality (set, so written even if empty)
            group += endpoints.bytes  // lb_endpoints (2), each already framed
            WireFormat.appendLengthDelimited(3, weight, to: &group)  // load_balancing_weight: UInt32Value
            WireFormat.appendLengthDelimited(2, group, to: &out)
            localities.append(
                .init(region: region, zone: locality.zone, source: locality.source.name, fields: (out.count - group.count)..<out.count))
        }
        return (out, headEnd, localities)
    }

    /// One `LbEndpoint` as field 2 of `LocalityLbEndpoints`.
    private static func appendLbEndpoint(_ member: EndpointIndex.Member, health: EndpointHealth, to out: inout [UInt8]) {
        var socket: [UInt8] = []
        WireFormat.appendString(2, member.endpoint.address, to: &socket)
        WireFormat.appendVarint(3 << 3, to: &socket)  // port_value: a oneof member, written even when 0
        WireFormat.appendVarint(UInt64(member.targetPort), to: &socket)
        var address: [UInt8] = []
        WireFormat.appendLengthDelimited(1, socket, to: &address)  // Address.socket_address
        var endpoint: [UInt8] = []
        WireFormat.appendLengthDelimited(1, address, to: &endpoint)  // Endpoint.address
        WireFormat.appendString(3, member.endpoint.hostname, to: &endpoint)
        // Metadata: filter_metadata {"legation": Struct}; map entries always carry key and value, and
        // deterministic ordering sorts the Struct's keys: node, pod, source.
        var fields: [UInt8] = []
        func appendEntry(_ name: String, _ value: String) {
            var stringValue: [UInt8] = []
            WireFormat.appendLengthDelimited(3, value.utf8, to: &stringValue)  // Value.string_value (oneof)
            var entry: [UInt8] = []
            WireFormat.appendLengthDelimited(1, name.utf8, to: &entry)
            WireFormat.appendLengthDelimited(2, stringValue, to: &entry)
            WireFormat.appendLengthDelimited(1, entry, to: &fields)  // Struct.fields entry
        }
        if !member.endpoint.node.isEmpty { appendEntry("node", member.endpoint.node) }
        if !member.endpoint.targetPod.isEmpty { appendEntry("pod", member.endpoint.targetPod) }
        appendEntry("source", member.source.name)
        var namespaceEntry: [UInt8] = []
        WireFormat.appendLengthDelimited(1, metadataNamespace.utf8, to: &namespaceEntry)
        WireFormat.appendLengthDelimited(2, fields, to: &namespaceEntry)
        var metadata: [UInt8] = []
        WireFormat.appendLengthDelimited(1, namespaceEntry, to: &metadata)  // Metadata.filter_metadata entry
        var lb: [UInt8] = []
        lb.reserveCapacity(endpoint.count + metadata.count + 8)
        WireFormat.appendLengthDelimited(1, endpoint, to: &lb)  // LbEndpoint.endpoint (oneof)
        WireFormat.appendVarintField(2, health.wireValue, to: &lb)
        WireFormat.appendLengthDelimited(3, metadata, to: &lb)
        WireFormat.appendLengthDelimited(2, lb, to: &out)
    }

    /// The listener name a proxyless gRPC client asks for: `<service>.<namespace>:<port>` (its target is
    /// `xds:///<service>.<namespace>:<port>`). WARNING - STABLE API: clients' targets name it.
    public static func listenerName(_ key: ClusterKey, port: ServicePort) -> String {
        "\(key.service.name).\(key.service.namespace):\(port.port)"
    }

    /// For gRPC ports: an API listener (HttpConnectionManager with RDS over ADS) for proxyless gRPC
    /// clients, named by `listenerName`.
    public func listener(_ key: ClusterKey, port: ServicePort) -> Envoy_Config_Listener_V3_Listener {
        let name = Self.listenerName(key, port: port)
        var manager = Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager()
        manager.statPrefix = name
        manager.rds = .with {
            $0.routeConfigName = name
            $0.configSource = .with {
                $0.ads = Envoy_Config_Core_V3_AggregatedConfigSource()
                $0.resourceApiVersion = .v3
            }
        }
        var router = Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpFilter()
        router.name = "envoy.filters.http.router"
        if let any = try? Google_Protobuf_Any(message: Envoy_Extensions_Filters_Http_Router_V3_Router()) { router.typedConfig = any }
        manager.httpFilters = [router]
        var listener = Envoy_Config_Listener_V3_Listener()
        listener.name = name
        if let any = try? Google_Protobuf_Any(message: manager) { listener.apiListener = .with { $0.apiListener = any } }
        return listener
    }

    /// The route of a gRPC port's listener: every request to the cluster.
    public func route(_ key: ClusterKey, port: ServicePort) -> Envoy_Config_Route_V3_RouteConfiguration {
        let name = Self.listenerName(key, port: port)
        var route = Envoy_Config_Route_V3_Route()
        route.match = .with { $0.prefix = "" }
        route.route = .with { $0.cluster = key.name }
        var host = Envoy_Config_Route_V3_VirtualHost()
        host.name = name
        host.domains = ["*"]
        host.routes = [route]
        var configuration = Envoy_Config_Route_V3_RouteConfiguration()
        configuration.name = name
        configuration.virtualHosts = [host]
        return configuration
    }

    /// The region a zone belongs to, by the cloud naming conventions: `us-east-1a` → `us-east-1` (AWS),
    /// `us-central1-b` → `us-central1` (GCP), `eastus-2` → `eastus` (Azure); otherwise empty.
    public static func region(ofZone zone: String) -> String {
        let bytes = Array(zone.utf8)
        guard bytes.count >= 3, let last = bytes.last else { return "" }
        let isLetter = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(last)
        let isDigit = (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(last)
        let beforeLast = bytes[bytes.count - 2]
        if beforeLast == UInt8(ascii: "-"), isLetter || isDigit {
            return String(decoding: bytes.dropLast(2), as: UTF8.self)
        }
        if isLetter, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(beforeLast) {
            return String(decoding: bytes.dropLast(), as: UTF8.self)
        }
        return ""
    }

}

/// A locality of a load assignment: one per (zone, source cluster), in this order.
private struct LocalityKey: Hashable, Comparable {
    var zone: String
    var source: SourceCluster
    static func < (lhs: Self, rhs: Self) -> Bool { (lhs.zone, lhs.source) < (rhs.zone, rhs.source) }
}

extension EndpointHealth {
    /// `envoy.config.core.v3.HealthStatus`.
    var wireValue: UInt64 {
        switch self {
        case .healthy: UInt64(Envoy_Config_Core_V3_HealthStatus.healthy.rawValue)
        case .draining: UInt64(Envoy_Config_Core_V3_HealthStatus.draining.rawValue)
        case .unhealthy: UInt64(Envoy_Config_Core_V3_HealthStatus.unhealthy.rawValue)
        }
    }
}
