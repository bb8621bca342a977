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

    /// One `LbEndpoint` as field 2 of `LocalityLbEndpoints`, written straight into `out`: each nested
    /// message's size is worked out first, so its length prefix goes before it and no message is built
    /// on its own (building each of a dozen nested messages in an array of its own was most of a
    /// 50,000-endpoint snapshot's cost).
    private static func appendLbEndpoint(_ member: EndpointIndex.Member, health: EndpointHealth, to out: inout [UInt8]) {
        // A length-delimited field with a one-byte tag (every field number here is below 16), and a string field omitted when empty.
        func field(_ length: Int) -> Int { 1 + WireFormat.varintSize(UInt64(length)) + length }
        func string(_ text: String) -> Int { text.isEmpty ? 0 : field(text.utf8.count) }
        let endpoint = member.endpoint
        let port = UInt64(member.targetPort)
        // Address.socket_address: address (2), port_value (3, a oneof member: written even when 0).
        let socket = string(endpoint.address) + 1 + WireFormat.varintSize(port)
        let address = field(socket)
        let endpointMessage = field(address) + string(endpoint.hostname)
        // Metadata: filter_metadata {"legation": Struct}; map entries always carry key and value, and
        // deterministic ordering sorts the Struct's keys: node, pod, source.
        // (node and pod only when set: no list of entries built per endpoint.)
        let (node, pod, source) = (endpoint.node, endpoint.targetPod, member.source.name)
        func entrySize(_ name: String, _ value: String) -> Int { field(name.utf8.count) + field(field(value.utf8.count)) }
        let fields =
            (node.isEmpty ? 0 : field(entrySize("node", node))) + (pod.isEmpty ? 0 : field(entrySize("pod", pod)))
            + field(entrySize("source", source))
        let namespaceEntry = field(metadataNamespace.utf8.count) + field(fields)
        let metadata = field(namespaceEntry)
        let healthBytes = health.wireValue == 0 ? 0 : 1 + WireFormat.varintSize(health.wireValue)
        let lb = field(endpointMessage) + healthBytes + field(metadata)

        // Sized first, then written through a pointer (appending byte by byte was a fifth of a build).
        let start = out.count
        let total = field(lb)
        out.append(contentsOf: repeatElement(0, count: total))
        out.withUnsafeMutableBufferPointer { buffer in
            var writer = WireWriter(buffer.baseAddress! + start)
            writer.field(2, length: lb)  // LocalityLbEndpoints.lb_endpoints
            writer.field(1, length: endpointMessage)  // LbEndpoint.endpoint (oneof)
            writer.field(1, length: address)  // Endpoint.address
            writer.field(1, length: socket)  // Address.socket_address
            writer.string(2, endpoint.address)
            writer.varintField(3, port)
            writer.string(3, endpoint.hostname)
            if health.wireValue != 0 { writer.varintField(2, health.wireValue) }
            writer.field(3, length: metadata)  // LbEndpoint.metadata
            writer.field(1, length: namespaceEntry)  // Metadata.filter_metadata entry
            writer.lengthDelimited(1, metadataNamespace)
            writer.field(2, length: fields)  // the Struct
            func entry(_ name: String, _ value: String) {
                writer.field(1, length: entrySize(name, value))  // Struct.fields entry
                writer.lengthDelimited(1, name)
                writer.field(2, length: field(value.utf8.count))  // Value
                writer.lengthDelimited(3, value)  // Value.string_value (oneof)
            }
            if !node.isEmpty { entry("node", node) }
            if !pod.isEmpty { entry("pod", pod) }
            entry("source", source)
            precondition(writer.cursor == buffer.baseAddress! + start + total, "LbEndpoint size miscounted")
        }
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
