import Foundation
import Yams

/// A kubeconfig file, resolved to a `KubernetesConnection` for one context.
///
/// Kubeconfigs of remote clusters may come from untrusted hands (a Secret someone else writes), so
/// what they may make the ingestor do is the operator's choice, in the ingestor's own configuration:
/// exec plugins run commands, and file references read local files (a service-account token, a key);
/// both are refused unless allowed.
public struct Kubeconfig: Sendable {
    public struct Policy: Sendable, Equatable {
        public var allowExec: Bool
        public var allowFileReferences: Bool
        public init(allowExec: Bool = false, allowFileReferences: Bool = false) {
            self.allowExec = allowExec
            self.allowFileReferences = allowFileReferences
        }
    }

    struct Document: Decodable, Sendable {
        struct Named<Value: Decodable & Sendable>: Decodable, Sendable {
            var name: String
            var value: Value
            enum CodingKeys: String, CodingKey { case name, cluster, user, context }
            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                name = try container.decode(String.self, forKey: .name)
                for key in [CodingKeys.cluster, .user, .context] where container.contains(key) {
                    value = try container.decode(Value.self, forKey: key)
                    return
                }
                throw DecodingError.keyNotFound(
                    CodingKeys.cluster,
                    .init(codingPath: container.codingPath, debugDescription: "entry \(name) has no cluster, user or context"))
            }
        }
        struct Cluster: Decodable, Sendable {
            var server: String
            var certificateAuthorityData: String?
            var certificateAuthority: String?
            var insecureSkipTLSVerify: Bool?
            enum CodingKeys: String, CodingKey {
                case server
                case certificateAuthorityData = "certificate-authority-data"
                case certificateAuthority = "certificate-authority"
                case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            }
        }
        struct Exec: Decodable, Sendable {
            struct Variable: Decodable, Sendable {
                var name: String
                var value: String
            }
            var command: String
            var args: [String]?
            var env: [Variable]?
            var apiVersion: String?
        }
        struct User: Decodable, Sendable {
            var token: String?
            var tokenFile: String?
            var clientCertificateData: String?
            var clientKeyData: String?
            var clientCertificate: String?
            var clientKey: String?
            var exec: Exec?
            enum CodingKeys: String, CodingKey {
                case token, tokenFile, exec
                case clientCertificateData = "client-certificate-data"
                case clientKeyData = "client-key-data"
                case clientCertificate = "client-certificate"
                case clientKey = "client-key"
            }
        }
        struct Context: Decodable, Sendable {
            var cluster: String
            var user: String?
            var namespace: String?
        }
        var clusters: [Named<Cluster>]?
        var users: [Named<User>]?
        var contexts: [Named<Context>]?
        var currentContext: String?
        enum CodingKeys: String, CodingKey {
            case clusters, users, contexts
            case currentContext = "current-context"
        }
    }

    let document: Document

    /// Parses kubeconfig YAML (or JSON, which is YAML).
    public init(yaml: String) throws {
        do {
            document = try YAMLDecoder().decode(Document.self, from: yaml)
        } catch {
            throw IngestorError(.configuration, "not a kubeconfig: \(error)")
        }
    }

    public var currentContext: String? { document.currentContext }
    public var contexts: [String] { document.contexts?.map(\.name) ?? [] }

    /// The connection of `context` (default: the current context), under `policy`.
    public func connection(context name: String? = nil, policy: Policy = Policy()) throws -> KubernetesConnection {
        guard let contextName = name ?? document.currentContext, !contextName.isEmpty else {
            throw IngestorError(.configuration, "the kubeconfig has no current-context; name one")
        }
        guard let context = document.contexts?.first(where: { $0.name == contextName })?.value else {
            throw IngestorError(
                .configuration, "the kubeconfig has no context \(contextName) (it has: \(contexts.joined(separator: ", ")))")
        }
        guard let cluster = document.clusters?.first(where: { $0.name == context.cluster })?.value else {
            throw IngestorError(.configuration, "context \(contextName) names cluster \(context.cluster), which the kubeconfig lacks")
        }
        let user = context.user.flatMap { name in document.users?.first(where: { $0.name == name })?.value }
        if let name = context.user, user == nil {
            throw IngestorError(.configuration, "context \(contextName) names user \(name), which the kubeconfig lacks")
        }
        func file(_ path: String, _ what: String) throws -> [UInt8] {
            guard policy.allowFileReferences else {
                throw IngestorError(
                    .configuration,
                    "the kubeconfig refers to a local file for \(what) (\(path)); allow file references in the ingestor's configuration to use it"
                )
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw IngestorError(.configuration, "cannot read \(what) file \(path)")
            }
            return Array(data)
        }
        func base64(_ text: String, _ what: String) throws -> [UInt8] {
            guard let data = Data(base64Encoded: text.filter { !$0.isWhitespace }) else {
                throw IngestorError(.configuration, "\(what) in the kubeconfig is not base64")
            }
            return Array(data)
        }

        var connection = KubernetesConnection(server: cluster.server, insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false)
        guard cluster.server.hasPrefix("https://") || cluster.server.hasPrefix("http://") else {
            throw IngestorError(.configuration, "cluster server \(cluster.server.prefix(100)) is not an http(s) URL")
        }
        if let data = cluster.certificateAuthorityData {
            connection.certificateAuthority = try base64(data, "certificate-authority-data")
        } else if let path = cluster.certificateAuthority {
            connection.certificateAuthority = try file(path, "certificate-authority")
        }
        guard let user else { return connection }
        if let data = user.clientCertificateData { connection.clientCertificate = try base64(data, "client-certificate-data") }
        if let path = user.clientCertificate { connection.clientCertificate = try file(path, "client-certificate") }
        if let data = user.clientKeyData { connection.clientKey = try base64(data, "client-key-data") }
        if let path = user.clientKey { connection.clientKey = try file(path, "client-key") }
        if (connection.clientCertificate == nil) != (connection.clientKey == nil) {
            throw IngestorError(
                .configuration, "user of context \(contextName) has a client certificate without its key, or a key without its certificate")
        }
        if let token = user.token {
            connection.credentials = .token(token)
        } else if let path = user.tokenFile {
            guard policy.allowFileReferences else {
                throw IngestorError(
                    .configuration,
                    "the kubeconfig refers to a local token file (\(path)); allow file references in the ingestor's configuration to use it"
                )
            }
            connection.credentials = .tokenFile(path)
        } else if let exec = user.exec {
            guard policy.allowExec else {
                throw IngestorError(
                    .configuration,
                    "the kubeconfig runs an exec plugin (\(exec.command)); allow exec plugins in the ingestor's configuration to use it")
            }
            let plugin = ExecCredentialProvider.Plugin(
                command: exec.command, arguments: exec.args ?? [],
                environment: Dictionary((exec.env ?? []).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }),
                apiVersion: exec.apiVersion ?? "client.authentication.k8s.io/v1")
            connection.credentials = .provider(ExecCredentialProvider(plugin))
        }
        return connection
    }

    /// The in-cluster connection: the API server from `KUBERNETES_SERVICE_HOST`/`_PORT`, the mounted
    /// service-account token (re-read as it rotates) and CA.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws -> KubernetesConnection {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"] else {
            throw IngestorError(.configuration, "not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
        }
        guard let ca = FileManager.default.contents(atPath: directory + "/ca.crt") else {
            throw IngestorError(.configuration, "cannot read the service account CA \(directory)/ca.crt")
        }
        let server = host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)"
        return KubernetesConnection(server: server, certificateAuthority: Array(ca), credentials: .tokenFile(directory + "/token"))
    }
}
