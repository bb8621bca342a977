import ArgumentParser
import Foundation
import Shared

/// How to reach Redis, shared by every subcommand that needs it. Secrets can come from files (Kubernetes
/// Secrets mounted as volumes) or the environment instead of the URL.
struct RedisOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Redis URL: redis://[user[:password]@]host[:port][/db], or rediss:// for TLS. Env: LEGATION_REDIS_URL.", valueName: "url"))
    var redisURL: String?

    @Option(help: ArgumentHelp("Read the Redis password from this file (overrides the URL's). Env: LEGATION_REDIS_PASSWORD.", valueName: "path"))
    var redisPasswordFile: String?

    @Option(help: ArgumentHelp("PEM CA bundle that signed the Redis server certificate (rediss://).", valueName: "path"))
    var redisCAFile: String?

    @Option(help: ArgumentHelp("PEM client certificate for Redis mutual TLS.", valueName: "path"))
    var redisCertFile: String?

    @Option(help: ArgumentHelp("PEM key of --redis-cert-file.", valueName: "path"))
    var redisKeyFile: String?

    @Flag(help: "Do not verify the Redis server certificate (trials only).")
    var redisInsecureSkipVerify = false

    @Option(help: ArgumentHelp("Redis connect and command timeout, in seconds (default 5).", valueName: "seconds"))
    var redisTimeout: Double?

    /// The configuration, or nil when no URL was given anywhere.
    func configuration(clientName: String) throws -> RedisConfiguration? {
        let environment = ProcessInfo.processInfo.environment
        guard let url = redisURL ?? environment["LEGATION_REDIS_URL"] else { return nil }
        let redisTimeout = self.redisTimeout ?? 5
        guard redisTimeout > 0, redisTimeout <= 300 else {
            throw ValidationError("--redis-timeout must be in (0, 300] seconds")
        }
        let tls = RedisConfiguration.TLS(
            caFile: redisCAFile, certificateFile: redisCertFile, keyFile: redisKeyFile, insecureSkipVerify: redisInsecureSkipVerify)
        var configuration = try RedisConfiguration(url: url, tls: tls, clientName: clientName)
        if let file = redisPasswordFile {
            do {
                configuration.password = try String(contentsOfFile: file, encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw ValidationError("cannot read --redis-password-file \(file): \(error.localizedDescription)")
            }
        } else if let password = environment["LEGATION_REDIS_PASSWORD"] {
            configuration.password = password
        }
        configuration.connectTimeout = .milliseconds(Int64(redisTimeout * 1000))
        configuration.commandTimeout = .milliseconds(Int64(redisTimeout * 1000))
        return configuration
    }
}
