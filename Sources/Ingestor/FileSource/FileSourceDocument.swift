import Shared
import Yams

/// The file source's YAML: services and their endpoints, for workloads outside Kubernetes (VMs, legacy
/// hosts) and for the local demo. docs/file-source.md describes it.
///
/// ```yaml
/// cluster: vm-fleet            # the source cluster this file describes
/// services:
///   - namespace: payments
///     name: ledger
///     ports: [{name: http, port: 80, appProtocol: http}]
///     failover: zone,region      # optional: priorities by locality (as legation.io/failover)
///     endpoints:
///       - address: 10.20.0.5
///         ports: {http: 8080}  # target port per service port name; default: the service port
///         zone: us-east-1a
///         node: vm-17
///         ready: true          # default true
///         serving: true        # default: ready
///         terminating: false   # default false
/// ```
struct FileSourceDocument: Decodable {
    struct Port: Decodable {
        var name: String?
        var port: Int
        var `protocol`: String?
        var appProtocol: String?
    }

    struct EndpointEntry: Decodable {
        var address: String
        var ports: [String: Int]?
        var zone: String?
        var node: String?
        var hostname: String?
        var pod: String?
        var ready: Bool?
        var serving: Bool?
        var terminating: Bool?
    }

    struct Service: Decodable {
        var namespace: String?
        var name: String
        var ports: [Port]
        var failover: String?
        var endpoints: [EndpointEntry]?
    }

    var cluster: String
    var services: [Service]?
}
