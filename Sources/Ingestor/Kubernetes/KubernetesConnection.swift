import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL

/// Where a Kubernetes API server is and how to talk to it (from a kubeconfig or the in-cluster
/// service account).
public struct KubernetesConnection: Sendable {
    public enum Credentials: Sendable {
        case none
        case token(String)
        /// Re-read on every request, so a rotated service-account token is picked up.
        case tokenFile(String)
        /// Exec plugins, EKS: asked on every request (they cache), told when the server says 401.
        case provider(any BearerTokenProvider)
    }

    public var server: String
    /// PEM bundle of the CA(s) that signed the API server's certificate; nil = the system's.
    public var certificateAuthority: [UInt8]?
    public var insecureSkipTLSVerify: Bool
    /// PEM client certificate chain and key.
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    public var credentials: Credentials

    public init(
        server: String, certificateAuthority: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
        clientCertificate: [UInt8]? = nil, clientKey: [UInt8]? = nil, credentials: Credentials = .none
    ) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.certificateAuthority = certificateAuthority
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.credentials = credentials
    }
}
