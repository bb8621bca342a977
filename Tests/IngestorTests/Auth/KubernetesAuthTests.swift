import Foundation
import LegationTestSupport
import Synchronization
import Testing

@testable import Ingestor

@Suite(.timeLimit(.minutes(1)))
struct KubernetesAuthTests {
    func fixtureText(_ name: String) throws -> String { String(decoding: try KubeFixtures.data(name), as: UTF8.self) }

    @Test func kubeconfigContextsResolveEveryAuthStyleUnderThePolicy() throws {
        let config = try Kubeconfig(yaml: try fixtureText("kubeconfig-all-auth-styles-assembled.yaml"))
        #expect(config.currentContext == "arn:aws:eks:region:111222333444:cluster/ExampleCluster")
        #expect(config.contexts.count == 4)

        let token = try config.connection(context: "federal-context")
        #expect(token.server == "http://cow.org:8080")
        guard case .token("red-token") = token.credentials else {
            Issue.record("\(token.credentials)")
            return
        }

        // kind's kubeconfig: client certificate data; the fixture's data is not base64 PEM of a real cert,
        // but the kubeconfig layer only decodes base64 and pairs certificate with key.
        #expect(throws: IngestorError.self) { try config.connection(context: "kubernetes-admin@kind") }

        // exec plugins and file references are refused unless the operator allows them.
        do {
            _ = try config.connection()
            Issue.record("exec plugin accepted without permission")
        } catch let error as IngestorError {
            #expect(error.code == .configuration)
            #expect(error.message.contains("exec plugin"))
        }
        do {
            _ = try config.connection(context: "my-cluster", policy: .init(allowExec: true))
            Issue.record("file reference accepted without permission")
        } catch let error as IngestorError {
            #expect(error.message.contains("/etc/kubernetes/ca.pem"))
        }
        let eks = try config.connection(policy: .init(allowExec: true))
        guard case .provider(let provider) = eks.credentials, let exec = provider as? ExecCredentialProvider else {
            Issue.record("no exec provider")
            return
        }
        #expect(exec.plugin.command == "aws")
        #expect(exec.plugin.arguments.contains("get-token"))
        #expect(exec.plugin.apiVersion == "client.authentication.k8s.io/v1beta1")
        #expect(throws: IngestorError.self) { try config.connection(context: "nope") }
    }

    @Test func kindsPlaceholderDataIsAClearErrorAndRealDataLoads() async throws {
        // kind's test kubeconfig holds placeholders ("definitelyacert"), not base64.
        let placeholders = try Kubeconfig(yaml: try fixtureText("kubeconfig-client-cert-data-kind.yaml"))
        do {
            _ = try placeholders.connection()
            Issue.record("placeholder data accepted")
        } catch let error as IngestorError {
            #expect(error.code == .configuration)
            #expect(error.message.contains("not base64"))
        }
        // The same shape with real material, generated here, loads into a client.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let pki = try await TestCertificates(in: directory)
        func data(_ path: String) throws -> String { try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString() }
        let yaml = try fixtureText("kubeconfig-client-cert-data-kind.yaml")
            .replacingOccurrences(of: "definitelyacert", with: try data(pki.caCertificate))
            .replacingOccurrences(of: "seemslegit", with: try data(pki.clientCertificate))
            .replacingOccurrences(of: "client-key-data: yep", with: "client-key-data: " + (try data(pki.clientKey)))
        let connection = try Kubeconfig(yaml: yaml).connection()
        #expect(connection.server == "https://192.168.9.4:6443")
        #expect(connection.clientCertificate != nil && connection.clientKey != nil)
        let client = try KubernetesClient(connection)
        await client.shutdown()
    }

    @Test func inClusterConfigReadsTheMountedServiceAccount() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        _ = try directory.write("ca.crt", "-----BEGIN CERTIFICATE-----\n")
        _ = try directory.write("token", "sa-token\n")
        let connection = try Kubeconfig.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], directory: directory.path)
        #expect(connection.server == "https://10.96.0.1:443")
        guard case .tokenFile(let file) = connection.credentials else {
            Issue.record("no token file")
            return
        }
        #expect(file.hasSuffix("/token"))
        #expect(throws: IngestorError.self) { try Kubeconfig.inCluster(environment: [:], directory: directory.path) }
    }

    @Test func execCredentialsAreParsedAndCachedUntilTheyExpire() async throws {
        let parsed = try ExecCredentialProvider.parse(
            try KubeFixtures.data("execcredential-v1-token-expiry-k8s-docs.json"), expectedAPIVersion: "client.authentication.k8s.io/v1")
        #expect(parsed.token == "my-bearer-token")
        #expect(parsed.expires == ISO8601DateFormatter().date(from: "2018-03-06T01:30:20Z"))
        #expect(throws: IngestorError.self) {
            try ExecCredentialProvider.parse(try KubeFixtures.data("execcredential-v1-client-cert-k8s-docs.json"), expectedAPIVersion: "v1")
        }

        // A real plugin: a script that counts its runs and prints a credential expiring in 10 minutes.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let counter = directory.file("runs")
        let script = try directory.write(
            "plugin.sh",
            """
            #!/bin/sh
            echo run >> '\(counter)'
            test -n "$KUBERNETES_EXEC_INFO" || exit 3
            echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"tok-'$FOO'","expirationTimestamp":"'$(date -u -d '+10 min' +%Y-%m-%dT%H:%M:%SZ)'"}}'
            """)
        chmod(script, 0o755)
        let clock = Mutex(Date())
        // Run through /bin/sh: executing a file just written races with other tests' forks (ETXTBSY).
        let provider = ExecCredentialProvider(
            .init(command: "/bin/sh", arguments: [script], environment: ["FOO": "bar"]), now: { clock.withLock { $0 } })
        #expect(try await provider.token() == "tok-bar")
        #expect(try await provider.token() == "tok-bar")
        func runs() -> Int { ((try? String(contentsOfFile: counter, encoding: .utf8)) ?? "").split(separator: "\n").count }
        #expect(runs() == 1, "cached")
        clock.withLock { $0 = $0.addingTimeInterval(9.5 * 60) }  // within a minute of expiry: renewed
        _ = try await provider.token()
        #expect(runs() == 2)
        await provider.invalidate()
        _ = try await provider.token()
        #expect(runs() == 3, "a 401 drops the cached token")

        let failing = try directory.write("fail.sh", "#!/bin/sh\necho 'no credentials' >&2\nexit 1\n")
        chmod(failing, 0o755)
        do {
            _ = try await ExecCredentialProvider(.init(command: "/bin/sh", arguments: [failing])).token()
            Issue.record("a failing plugin gave a token")
        } catch let error as IngestorError {
            #expect(error.message.contains("no credentials"))
        }
    }

    @Test func eksTokensWithIRSAExchangeTheWebIdentityAndRenew() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let tokenFile = try directory.write("web-identity", "eyJhbGciOi.jwt\n")
        let calls = Mutex<[String]>([])
        let clock = Mutex(Date(timeIntervalSince1970: 1_682_640_000))
        let expiration = "2023-04-28T01:00:00Z"
        let provider = EKSTokenProvider(
            cluster: "prod", region: "us-west-2",
            source: .webIdentity(
                roleARN: "arn:aws:iam::111122223333:role/legation", tokenFile: tokenFile, sessionName: "legation-ingestor"),
            stsEndpoint: "http://127.0.0.1:1",
            exchange: { url in
                calls.withLock { $0.append(url) }
                let body = """
                    <AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>
                    <AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>
                    <SessionToken>session</SessionToken><Expiration>\(expiration)</Expiration>
                    </Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>
                    """
                return (Data(body.utf8), 200)
            },
            now: { clock.withLock { $0 } })
        let first = try await provider.token()
        #expect(first.hasPrefix("k8s-aws-v1."))
        #expect(try await provider.token() == first, "cached")
        #expect(calls.withLock { $0.count } == 1)
        let url = calls.withLock { $0[0] }
        #expect(url.contains("Action=AssumeRoleWithWebIdentity"))
        #expect(url.contains("WebIdentityToken=eyJhbGciOi.jwt"))
        #expect(url.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Flegation"))

        clock.withLock { $0 = $0.addingTimeInterval(14 * 60) }  // token near its end: a new one, same credentials
        #expect(try await provider.token() != first)
        #expect(calls.withLock { $0.count } == 1)
        clock.withLock { $0 = $0.addingTimeInterval(42 * 60) }  // 00:56, within 5 minutes of expiry: exchanged again
        _ = try await provider.token()
        #expect(calls.withLock { $0.count } == 2)

        let refusing = EKSTokenProvider(
            cluster: "prod", region: "us-west-2",
            source: .webIdentity(roleARN: "r", tokenFile: tokenFile, sessionName: "s"),
            exchange: { _ in (Data("<ErrorResponse><Error><Message>Not authorized</Message></Error></ErrorResponse>".utf8), 403) })
        do {
            _ = try await refusing.token()
            Issue.record("refused exchange gave a token")
        } catch let error as IngestorError {
            #expect(error.code == .authentication)
            #expect(error.description.contains("Not authorized"))
        }
        #expect(EKSTokenProvider.credentialSource(environment: ["AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"]) != nil)
        #expect(EKSTokenProvider.credentialSource(environment: [:]) == nil)
    }

    @Test func theAPIServerSees401AndTheProviderRenews() async throws {
        actor Tokens: BearerTokenProvider {
            var handed: [String] = []
            var next = ["expired-token", "good-token"]
            func token() -> String {
                let token = next.first!
                handed.append(token)
                return token
            }
            func invalidate() { if next.count > 1 { next.removeFirst() } }
        }
        var options = FakeKubernetesAPI.Options()
        options.tokens = ["good-token"]
        let api = try await FakeKubernetesAPI(options)
        let tokens = Tokens()
        let client = try KubernetesClient(KubernetesConnection(server: api.baseURL, credentials: .provider(tokens)))
        do {
            _ = try await client.list(ServiceObject.self, path: "/api/v1/services")
            Issue.record("an expired token listed")
        } catch let error as IngestorError {
            #expect(error.code == .refused)
            #expect(error.httpStatus == 401)
            #expect(error.status?.code == 401)
        }
        let (items, version) = try await client.list(ServiceObject.self, path: "/api/v1/services")
        #expect(items.isEmpty && !version.isEmpty)
        #expect(await tokens.handed == ["expired-token", "good-token"])
        await client.shutdown()
        await api.shutdown()
    }
}
