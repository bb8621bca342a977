import ArgumentParser
import Foundation
import Shared

/// How to reach Redis, shared by every subcommand that needs it. Secrets can come from files (Kubernetes
/// Secrets mounted as volumes) or the environment instead of the URL.
struct RedisOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Redis URL: redis://[user[:password]@]host[:port][/db]; Sentinel: redis+sentinel://host:26379[,host…]/<master>[/db]; Cluster: redis+cluster://host:6379[,host…]; rediss… for TLS. Env: LEGATION_REDIS_URL.",
            valueName: "url"))
    var redisURL: String?

    @Option(
        help: ArgumentHelp("Read the Redis password from this file (overrides the URL's). Env: LEGATION_REDIS_PASSWORD.", valueName: "path")
    )
    var redisPasswordFile: String?

    @Option(
        help: ArgumentHelp(
            "Read the sentinels' password from this file (when they require one). Env: LEGATION_REDIS_SENTINEL_PASSWORD.", valueName: "path"
        ))
    var redisSentinelPasswordFile: String?

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

    /// The flags as settings (to lay over a configuration file's).
    func settings(over base: RedisSettings = RedisSettings()) -> RedisSettings {
        var settings = base
        if let redisURL { settings.url = redisURL }
        if let redisPasswordFile { settings.passwordFile = redisPasswordFile }
        if let redisSentinelPasswordFile { settings.sentinelPasswordFile = redisSentinelPasswordFile }
        if let redisCAFile { settings.caFile = redisCAFile }
        if let redisCertFile { settings.certFile = redisCertFile }
        if let redisKeyFile { settings.keyFile = redisKeyFile }
        if redisInsecureSkipVerify { settings.insecureSkipVerify = true }
        if let redisTimeout { settings.timeoutSeconds = redisTimeout }
        return settings
    }

    /// The configuration, or nil when no URL was given anywhere.
    func configuration(clientName: String) throws -> RedisConfiguration? {
        let settings = settings()
        guard settings.url != nil || ProcessInfo.processInfo.environment["LEGATION_REDIS_URL"] != nil else { return nil }
        do {
            return try settings.configuration(clientName: clientName)
        } catch {
            throw ValidationError(error.message)
        }
    }
}
