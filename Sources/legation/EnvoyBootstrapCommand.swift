import ArgumentParser
import Server
import Shared

/// `legation envoy-bootstrap`: prints an Envoy bootstrap that takes clusters and endpoints from
/// xds-servers over ADS (for a sidecar's ConfigMap, or to try Envoy by hand against `legation demo`).
struct EnvoyBootstrapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "envoy-bootstrap",
        abstract: "Print an Envoy bootstrap (YAML) that gets clusters and endpoints from xds-servers over ADS.")

    @Option(help: ArgumentHelp("xds-server address (repeatable).", valueName: "host:port")) var xds: [String] = [
        "legation-xds-server:18000"
    ]
    @Option(help: ArgumentHelp("Envoy node id (unique per sidecar).", valueName: "id")) var nodeID: String
    @Option(help: ArgumentHelp("Envoy node cluster (the service this sidecar belongs to).", valueName: "name")) var nodeCluster = "legation"
    @Option(
        help: ArgumentHelp(
            "This sidecar's zone: endpoints in it are its first priority (topology.kubernetes.io/zone of its node).", valueName: "zone"))
    var zone = ""
    @Option(help: ArgumentHelp("This sidecar's region (default: derived from the zone, us-east-1a → us-east-1).", valueName: "region"))
    var region = ""
    @Option(help: ArgumentHelp("The source cluster this sidecar runs in (for failover orders that name `cluster`).", valueName: "name"))
    var sourceCluster = ""
    @Option(help: ArgumentHelp("Envoy admin port on 127.0.0.1.", valueName: "port")) var adminPort = 9901
    @Option(
        help: ArgumentHelp("Also an HTTP listener on 127.0.0.1 routing everything to one cluster: PORT=CLUSTER.", valueName: "port=cluster")
    )
    var route: String?
    @Option(
        help: ArgumentHelp("xDS over TLS: the CA file (in the sidecar's pod) the xds-server's certificate chains to.", valueName: "path"))
    var tlsCA: String?
    @Option(help: ArgumentHelp("Mutual TLS: the sidecar's client certificate file (with --tls-key).", valueName: "path")) var tlsCert:
        String?
    @Option(help: ArgumentHelp("Mutual TLS: the sidecar's private key file.", valueName: "path")) var tlsKey: String?
    @Option(help: ArgumentHelp("The DNS name the xds-server's certificate must carry (SNI and SAN check).", valueName: "name"))
    var tlsServerName: String?

    func run() throws {
        var servers: [(host: String, port: Int)] = []
        for address in xds {
            guard let (host, port) = splitHostAndPort(address) else { throw ValidationError("--xds \(address) is not host:port") }
            servers.append((host, port))
        }
        var listener: (port: Int, cluster: String)?
        if let route {
            let parts = route.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let port = Int(parts[0]), (1...65_535).contains(port), !parts[1].isEmpty else {
                throw ValidationError("--route must be PORT=CLUSTER, e.g. 10000=default/web:http")
            }
            listener = (port, String(parts[1]))
        }
        guard (1...65_535).contains(adminPort) else { throw ValidationError("--admin-port must be 1...65535") }
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard tlsCA != nil || (tlsCert == nil && tlsServerName == nil) else {
            throw ValidationError("--tls-cert, --tls-key and --tls-server-name need --tls-ca")
        }
        if !sourceCluster.isEmpty, (try? SourceCluster(sourceCluster)) == nil {
            throw ValidationError("--source-cluster \(sourceCluster) is not a DNS label")
        }
        var bootstrap = EnvoyBootstrap(
            nodeID: nodeID, nodeCluster: nodeCluster, zone: zone, xdsServers: servers, adminPort: adminPort, listener: listener)
        bootstrap.region = region
        bootstrap.sourceCluster = sourceCluster
        bootstrap.tls = tlsCA.map {
            EnvoyBootstrap.TLS(caFile: $0, certificateFile: tlsCert, privateKeyFile: tlsKey, serverName: tlsServerName)
        }
        print(bootstrap.yaml, terminator: "")
    }
}
