import AsyncHTTPClient
import Foundation

/// Runs a kubeconfig `exec` credential plugin (`client.authentication.k8s.io/v1` or `v1beta1`) and
/// caches its token until `expirationTimestamp` (a minute early), or until the server refuses it.
/// The command runs off Swift's cooperative pool; its output is bounded to 1 MiB and 30 s.
public actor ExecCredentialProvider: BearerTokenProvider {
    public struct Plugin: Sendable, Equatable {
        public var command: String
        public var arguments: [String]
        public var environment: [String: String]
        public var apiVersion: String

        public init(
            command: String, arguments: [String] = [], environment: [String: String] = [:],
            apiVersion: String = "client.authentication.k8s.io/v1"
        ) {
            self.command = command
            self.arguments = arguments
            self.environment = environment
            self.apiVersion = apiVersion
        }
    }

    public nonisolated let plugin: Plugin
    private var cached: (token: String, expires: Date?)?
    private let now: @Sendable () -> Date

    public init(_ plugin: Plugin, now: @escaping @Sendable () -> Date = Date.init) {
        self.plugin = plugin
        self.now = now
    }

    public func token() async throws -> String {
        if let cached, cached.expires.map({ $0.addingTimeInterval(-60) > now() }) ?? true { return cached.token }
        let output = try await run()
        let credential = try Self.parse(output, expectedAPIVersion: plugin.apiVersion)
        cached = credential
        return credential.token
    }

    public func invalidate() { cached = nil }

    /// Parses an ExecCredential; the token and its expiry.
    static func parse(_ data: Data, expectedAPIVersion: String) throws -> (token: String, expires: Date?) {
        struct ExecCredential: Decodable {
            struct Status: Decodable {
                var token: String?
                var expirationTimestamp: String?
                var clientCertificateData: String?
            }
            var apiVersion: String?
            var kind: String?
            var status: Status?
        }
        let credential: ExecCredential
        do {
            credential = try JSONDecoder().decode(ExecCredential.self, from: data)
        } catch {
            throw IngestorError(.authentication, "the exec plugin did not print an ExecCredential: \(error)")
        }
        guard credential.kind == "ExecCredential", credential.apiVersion?.hasPrefix("client.authentication.k8s.io/") == true else {
            throw IngestorError(
                .authentication, "the exec plugin printed kind \(credential.kind ?? "none"), apiVersion \(credential.apiVersion ?? "none")")
        }
        guard let token = credential.status?.token, !token.isEmpty else {
            if credential.status?.clientCertificateData != nil {
                throw IngestorError(.authentication, "exec plugins that return client certificates are not supported; use a token plugin")
            }
            throw IngestorError(.authentication, "the exec plugin's ExecCredential has no status.token")
        }
        var expires: Date?
        if let text = credential.status?.expirationTimestamp {
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw IngestorError(.authentication, "the exec plugin's expirationTimestamp \(text.prefix(40)) is not RFC 3339")
            }
            expires = date
        }
        return (token, expires)
    }

    private func run() async throws -> Data {
        let plugin = self.plugin
        return try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: plugin.command.contains("/") ? plugin.command : "/usr/bin/env")
                process.arguments = plugin.command.contains("/") ? plugin.arguments : [plugin.command] + plugin.arguments
                var environment = ProcessInfo.processInfo.environment.merging(plugin.environment) { $1 }
                environment["KUBERNETES_EXEC_INFO"] =
                    #"{"apiVersion":"\#(plugin.apiVersion)","kind":"ExecCredential","spec":{"interactive":false}}"#
                process.environment = environment
                let output = Pipe()
                let errors = Pipe()
                process.standardOutput = output
                process.standardError = errors
                process.standardInput = FileHandle.nullDevice
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: IngestorError(.authentication, "cannot run the exec plugin \(plugin.command): \(error)"))
                    return
                }
                let killer = DispatchWorkItem { process.terminate() }
                DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: killer)
                let data = output.fileHandleForReading.readDataToEndOfFile()
                let stderr = errors.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                killer.cancel()
                guard process.terminationStatus == 0 else {
                    let message = String(decoding: stderr.prefix(500), as: UTF8.self)
                    continuation.resume(
                        throwing: IngestorError(
                            .authentication, "the exec plugin \(plugin.command) exited with \(process.terminationStatus): \(message)"))
                    return
                }
                guard data.count <= 1 << 20 else {
                    continuation.resume(throwing: IngestorError(.authentication, "the exec plugin printed more than 1 MiB"))
                    return
                }
                continuation.resume(returning: data)
            }
        }
    }
}
