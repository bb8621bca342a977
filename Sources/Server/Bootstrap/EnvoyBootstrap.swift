/// An Envoy bootstrap for a sidecar of this control plane: clusters and endpoints over ADS from the
/// xds-servers, optionally a listener that routes everything to one cluster (demos and tests; the
/// listener-and-route issue brings LDS/RDS). `legation envoy-bootstrap` prints one.
public struct EnvoyBootstrap: Sendable, Hashable {
    public var nodeID: String
    public var nodeCluster: String
    /// The node's zone, region and source cluster (`locality.sub_zone`): where it is, for priorities by
    /// locality (an empty region is derived from the zone by the server).
    public var zone: String
    public var region: String = ""
    public var sourceCluster: String = ""
    /// xds-server addresses (`host`, `port`); a Kubernetes Service name in production.
    public var xdsServers: [(host: String, port: Int)]
    public var adminAddress: String
    public var adminPort: Int
    /// An HTTP listener on 127.0.0.1 routing every request to `cluster`, when set.
    public var listener: (port: Int, cluster: String)?
    /// Incremental xDS (`DELTA_GRPC`) instead of state of the world.
    public var delta: Bool
    /// TLS to the xds-servers (set when they serve `grpc.tls`); nil is plaintext.
    public var tls: TLS?

    /// The sidecar's side of xDS over TLS: files mounted in its pod.
    public struct TLS: Sendable, Hashable {
        /// PEM CA bundle the xds-server's certificate must chain to.
        public var caFile: String
        /// PEM client certificate and key, for mutual TLS.
        public var certificateFile: String?
        public var privateKeyFile: String?
        /// The name the server's certificate must carry (SNI and a SAN check); nil skips the name check.
        public var serverName: String?

        public init(caFile: String, certificateFile: String? = nil, privateKeyFile: String? = nil, serverName: String? = nil) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.serverName = serverName
        }
    }

    public init(
        nodeID: String, nodeCluster: String = "legation", zone: String = "", xdsServers: [(host: String, port: Int)],
        adminAddress: String = "127.0.0.1", adminPort: Int = 9901, listener: (port: Int, cluster: String)? = nil,
        delta: Bool = false
    ) {
        self.delta = delta
        self.nodeID = nodeID
        self.nodeCluster = nodeCluster
        self.zone = zone
        self.xdsServers = xdsServers
        self.adminAddress = adminAddress
        self.adminPort = adminPort
        self.listener = listener
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.yaml == rhs.yaml }
    public func hash(into hasher: inout Hasher) { hasher.combine(yaml) }

    /// The bootstrap as YAML (JSON-style flow values, so names need no further escaping).
    public var yaml: String {
        let endpoints = xdsServers.map { server in
            "{endpoint: {address: {socket_address: {address: \(quoted(server.host)), port_value: \(server.port)}}}}"
        }.joined(separator: ", ")
        let isIP = xdsServers.allSatisfy { server in server.host.allSatisfy { $0.isNumber || $0 == "." || $0 == ":" } }
        var text = """
            node: {id: \(quoted(nodeID)), cluster: \(quoted(nodeCluster)), locality: {\(locality)}}
            admin: {address: {socket_address: {address: \(quoted(adminAddress)), port_value: \(adminPort)}}}
            dynamic_resources:
              ads_config:
                api_type: \(delta ? "DELTA_GRPC" : "GRPC")
                transport_api_version: V3
                set_node_on_first_message_only: true
                grpc_services: [{envoy_grpc: {cluster_name: legation-xds}}]
              cds_config: {ads: {}, resource_api_version: V3}
            static_resources:
              clusters:
              - name: legation-xds
                type: \(isIP ? "STATIC" : "STRICT_DNS")
                connect_timeout: 1s
                typed_extension_protocol_options:
                  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                    explicit_http_config:
                      http2_protocol_options:
                        connection_keepalive: {interval: 30s, timeout: 5s}
                load_assignment:
                  cluster_name: legation-xds
                  endpoints: [{lb_endpoints: [\(endpoints)]}]

            """
        if let tls {
            var context = "validation_context: {trusted_ca: {filename: \(quoted(tls.caFile))}"
            if let name = tls.serverName {
                context += ", match_typed_subject_alt_names: [{san_type: DNS, matcher: {exact: \(quoted(name))}}]"
            }
            context += "}"
            if let certificate = tls.certificateFile, let key = tls.privateKeyFile {
                context +=
                    ", tls_certificates: [{certificate_chain: {filename: \(quoted(certificate))}, private_key: {filename: \(quoted(key))}}]"
            }
            text += """
                    transport_socket:
                      name: envoy.transport_sockets.tls
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                        common_tls_context: {alpn_protocols: [h2], \(context)}\(tls.serverName.map { "\n        sni: \(quoted($0))" } ?? "")

                """
        }
        if let listener {
            text += """
                  listeners:
                  - name: ingress
                    address: {socket_address: {address: 127.0.0.1, port_value: \(listener.port)}}
                    filter_chains:
                    - filters:
                      - name: envoy.filters.network.http_connection_manager
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                          stat_prefix: ingress
                          route_config:
                            validate_clusters: false
                            virtual_hosts:
                            - name: all
                              domains: ["*"]
                              routes: [{match: {prefix: /}, route: {cluster: \(quoted(listener.cluster))}}]
                          http_filters:
                          - name: envoy.filters.http.router
                            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}

                """
        }
        return text
    }

    /// The node's locality fields (zone always, the others when set).
    private var locality: String {
        var fields = ["zone: \(quoted(zone))"]
        if !region.isEmpty { fields.insert("region: \(quoted(region))", at: 0) }
        if !sourceCluster.isEmpty { fields.append("sub_zone: \(quoted(sourceCluster))") }
        return fields.joined(separator: ", ")
    }

    private func quoted(_ text: String) -> String {
        var result = "\""
        for character in text.unicodeScalars {
            switch character {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case _ where character.value < 0x20:
                let hex = String(character.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(character)
            }
        }
        return result + "\""
    }
}
