import Foundation
import LocalProcesses
import Shared

/// A throwaway PKI made with the `openssl` command: a CA, a server certificate for `localhost` and
/// 127.0.0.1, and a client certificate, all signed by the CA; plus a second, unrelated CA.
public struct TestCertificates: Sendable {
    public let caCertificate: String
    public let serverCertificate: String
    public let serverKey: String
    public let clientCertificate: String
    public let clientKey: String
    /// A client certificate from the CA naming a workload: URI SAN
    /// `spiffe://legation.test/ns/default/sa/sidecar-1`, DNS SAN `sidecar-1.sidecars.legation.test`.
    public let workloadCertificate: String
    public let workloadKey: String
    /// A CA that signed nothing here: trusting only it must fail verification.
    public let otherCACertificate: String

    public init(in directory: TemporaryDirectory) async throws {
        let d = directory.path
        let script = """
            set -e
            cd '\(d)'
            cat > server.ext <<EOF
            subjectAltName=DNS:localhost,IP:127.0.0.1
            EOF
            cat > client.ext <<EOF
            extendedKeyUsage=clientAuth
            EOF
            cat > workload.ext <<EOF
            extendedKeyUsage=clientAuth
            subjectAltName=URI:spiffe://legation.test/ns/default/sa/sidecar-1,DNS:sidecar-1.sidecars.legation.test
            EOF
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=legation-test-ca -keyout ca.key -out ca.crt
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.crt
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout server.key -out server.csr
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=legation-client -keyout client.key -out client.csr
            openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.crt
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=sidecar-1 -keyout workload.key -out workload.csr
            openssl x509 -req -in workload.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile workload.ext -out workload.crt
            """
        try await runShell(script)
        caCertificate = directory.file("ca.crt")
        serverCertificate = directory.file("server.crt")
        serverKey = directory.file("server.key")
        clientCertificate = directory.file("client.crt")
        clientKey = directory.file("client.key")
        workloadCertificate = directory.file("workload.crt")
        workloadKey = directory.file("workload.key")
        otherCACertificate = directory.file("other.crt")
    }
}

/// Runs `script` with bash; throws with its output if it fails.
public func runShell(_ script: String) async throws {
    let directory = try TemporaryDirectory(prefix: "legation-shell")
    defer { directory.remove() }
    let log = directory.file("output")
    let process = try ChildProcess("/bin/bash", ["-c", script], outputFile: log)
    let status = try await process.wait()
    guard status == 0 else {
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        throw TestSupportError("shell script failed (\(status)): \(output.suffix(2000))")
    }
}
