import AsyncHTTPClient
import Foundation

/// EKS tokens made in-process (no `aws` CLI): credentials from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or, with IRSA, exchanged from the
/// web-identity token file (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`) by STS
/// `AssumeRoleWithWebIdentity`. Tokens and temporary credentials are renewed before they expire.
public actor EKSTokenProvider: BearerTokenProvider {
    public enum CredentialSource: Sendable {
        case fixed(AWSCredentials)
        case webIdentity(roleARN: String, tokenFile: String, sessionName: String)
    }

    public let cluster: String
    public let region: String
    private let source: CredentialSource
    /// `https://sts.<region>.amazonaws.com` unless set (tests point it at a loopback server).
    private let stsEndpoint: String
    private let stsHost: String?
    private let exchange: @Sendable (String) async throws -> (Data, Int)
    private var credentials: AWSCredentials?
    private var cached: (token: String, expires: Date)?
    private let now: @Sendable () -> Date

    public init(
        cluster: String, region: String, source: CredentialSource, stsEndpoint: String? = nil, stsHostForSigning: String? = nil,
        exchange: (@Sendable (String) async throws -> (Data, Int))? = nil, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.cluster = cluster
        self.region = region
        self.source = source
        self.stsEndpoint = stsEndpoint ?? "https://sts.\(region).amazonaws.com"
        self.stsHost = stsHostForSigning
        self.exchange =
            exchange ?? { url in
                let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(15))
                let body = try await response.body.collect(upTo: 1 << 20)
                return (Data(body.readableBytesView), Int(response.status.code))
            }
        self.now = now
    }

    /// The source the environment describes, or nil when it describes none.
    public static func credentialSource(environment: [String: String] = ProcessInfo.processInfo.environment) -> CredentialSource? {
        if let role = environment["AWS_ROLE_ARN"], let file = environment["AWS_WEB_IDENTITY_TOKEN_FILE"] {
            return .webIdentity(roleARN: role, tokenFile: file, sessionName: environment["AWS_ROLE_SESSION_NAME"] ?? "legation-ingestor")
        }
        if let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"] {
            return .fixed(AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"]))
        }
        return nil
    }

    public func token() async throws -> String {
        let current = now()
        if let cached, cached.expires.addingTimeInterval(-60) > current { return cached.token }
        let credentials = try await currentCredentials()
        let token = EKSToken.make(cluster: cluster, region: region, credentials: credentials, date: current, stsHost: stsHost)
        cached = (token, current.addingTimeInterval(EKSToken.lifetime))
        return token
    }

    public func invalidate() {
        cached = nil
        credentials = nil
    }

    private func currentCredentials() async throws -> AWSCredentials {
        if let credentials, credentials.expiration.map({ $0.addingTimeInterval(-300) > now() }) ?? true { return credentials }
        switch source {
        case .fixed(let fixed):
            credentials = fixed
        case .webIdentity(let role, let file, let session):
            credentials = try await assumeRole(role, tokenFile: file, sessionName: session)
        }
        return credentials!
    }

    private func assumeRole(_ role: String, tokenFile: String, sessionName: String) async throws -> AWSCredentials {
        guard let identity = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
            throw IngestorError(.authentication, "cannot read the web identity token file \(tokenFile)")
        }
        let query = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", role),
            ("RoleSessionName", sessionName), ("WebIdentityToken", identity.trimmingCharacters(in: .whitespacesAndNewlines))
        ].map { "\(AWSSigV4.encode($0.0))=\(AWSSigV4.encode($0.1))" }.joined(separator: "&")
        let (data, status) = try await exchange("\(stsEndpoint)/?\(query)")
        let body = String(decoding: data.prefix(1 << 16), as: UTF8.self)
        guard status == 200 else {
            throw IngestorError(
                .authentication, "STS AssumeRoleWithWebIdentity failed: \(Self.tag("Message", in: body) ?? body.prefix(200).description)",
                httpStatus: status)
        }
        guard let key = Self.tag("AccessKeyId", in: body), let secret = Self.tag("SecretAccessKey", in: body),
            let token = Self.tag("SessionToken", in: body)
        else { throw IngestorError(.authentication, "STS answered without credentials") }
        let expiration = Self.tag("Expiration", in: body).flatMap { ISO8601DateFormatter().date(from: $0) }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token, expiration: expiration)
    }

    /// The text of the first `<name>…</name>` element.
    static func tag(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex)
        else { return nil }
        return String(xml[open.upperBound..<close.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
