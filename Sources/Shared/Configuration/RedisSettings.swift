import Foundation

/// The Redis section of a role's configuration file (and of the `--redis-*` flags): how an operator
/// describes the connection. `configuration(clientName:)` turns it into a validated
/// `RedisConfiguration`, reading secrets from files or the environment.
public struct RedisSettings: Codable, Sendable, Equatable {
    public var url: String?
    public var passwordFile: String?
    /// With a `redis+sentinel://` URL, when the sentinels require credentials of their own.
    public var sentinelUsername: String?
    public var sentinelPasswordFile: String?
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var insecureSkipVerify: Bool?
    public var timeoutSeconds: Double?
    public var streamMaxLength: Int?

    public init() {}

    /// Problems an operator can act on; empty when usable.
    public func problems() -> [String] {
        var problems: [String] = []
        if url == nil { problems.append("redis.url is not set (or LEGATION_REDIS_URL, --redis-url)") }
        if let url {
            do { _ = try RedisConfiguration(url: url) } catch { problems.append("redis.url: \(error.message)") }
        }
        if let timeout = timeoutSeconds, !(0.1...300).contains(timeout) { problems.append("redis.timeoutSeconds must be 0.1...300") }
        return problems
    }

    /// The connection configuration. The password comes from `passwordFile`, else
    /// `LEGATION_REDIS_PASSWORD`, else the URL; the sentinels' from `sentinelPasswordFile`, else
    /// `LEGATION_REDIS_SENTINEL_PASSWORD`.
    /// - Throws: `StoreError.configuration` naming what is wrong.
    public func configuration(
        clientName: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(StoreError) -> RedisConfiguration {
        guard let url = url ?? environment["LEGATION_REDIS_URL"] else {
            throw StoreError(.configuration, "redis.url is not set (or LEGATION_REDIS_URL, --redis-url)")
        }
        let tls = RedisConfiguration.TLS(
            caFile: caFile, certificateFile: certFile, keyFile: keyFile, insecureSkipVerify: insecureSkipVerify ?? false)
        var configuration = try RedisConfiguration(url: url, tls: tls, clientName: clientName)
        if let passwordFile {
            guard let password = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                throw StoreError(.configuration, "cannot read the Redis password file \(passwordFile)")
            }
            configuration.password = password.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let password = environment["LEGATION_REDIS_PASSWORD"] {
            configuration.password = password
        }
        configuration.sentinelUsername = sentinelUsername
        if let sentinelPasswordFile {
            guard let password = try? String(contentsOfFile: sentinelPasswordFile, encoding: .utf8) else {
                throw StoreError(.configuration, "cannot read the sentinel password file \(sentinelPasswordFile)")
            }
            configuration.sentinelPassword = password.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let password = environment["LEGATION_REDIS_SENTINEL_PASSWORD"] {
            configuration.sentinelPassword = password
        }
        let timeout = timeoutSeconds ?? 5
        guard (0.1...300).contains(timeout) else { throw StoreError(.configuration, "redis.timeoutSeconds must be 0.1...300") }
        configuration.connectTimeout = .milliseconds(Int64(timeout * 1000))
        configuration.commandTimeout = .milliseconds(Int64(timeout * 1000))
        return configuration
    }
}
