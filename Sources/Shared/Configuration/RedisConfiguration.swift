/// How to reach Redis. Built from a URL plus options that do not belong in one (secrets from files,
/// certificates); validated on construction so a bad setting fails at startup with a clear message.
///
/// Three topologies, by URL scheme (`rediss…` for TLS to every node):
/// - `redis://[user[:password]@]host[:port][/db]`: one server (or a managed endpoint that fails over
///   behind one address);
/// - `redis+sentinel://[user[:password]@]host[:port][,host[:port]…]/<master name>[/db]`: the sentinels
///   (port 26379 by default) name the primary of `<master name>`; clients follow it through failovers;
/// - `redis+cluster://[user[:password]@]host[:port][,host[:port]…]`: Redis Cluster, its shards found
///   from these seed nodes; every command goes to the shard that owns its key's slot.
public struct RedisConfiguration: Sendable, Hashable {
    public struct TLS: Sendable, Hashable {
        /// PEM file of the CA(s) that signed the server's certificate; nil = the system's trust store.
        public var caFile: String?
        /// PEM files of a client certificate chain and its key, for servers that require one.
        public var certificateFile: String?
        public var keyFile: String?
        /// Skip verifying the server's certificate. For trials only: anyone on the path can then
        /// read and change endpoint data.
        public var insecureSkipVerify: Bool

        public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, insecureSkipVerify: Bool = false) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.insecureSkipVerify = insecureSkipVerify
        }
    }

    /// A Redis server (or sentinel) address.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// Which servers hold the data.
    public enum Topology: Sendable, Hashable {
        /// One server at `host:port`.
        case standalone
        /// The primary the sentinels report for `masterName`, asked again at every (re)connect.
        case sentinel(masterName: String, sentinels: [Address])
        /// Redis Cluster, its slots read from any of `seeds` (and then from the nodes it names).
        case cluster(seeds: [Address])
    }

    public var host: String
    public var port: Int
    public var topology: Topology
    /// Set for `rediss…` URLs: TLS to every node (and to sentinels).
    public var tls: TLS?
    /// ACL user name; nil = the `default` user.
    public var username: String?
    public var password: String?
    /// Credentials for the sentinels, when they differ from the data nodes' (nil: none).
    public var sentinelUsername: String?
    public var sentinelPassword: String?
    public var database: Int
    public var connectTimeout: Duration
    public var commandTimeout: Duration
    /// Reconnect backoff: first delay, growing ×2 up to the maximum, each with ±50% jitter.
    public var reconnectInitialDelay: Duration
    public var reconnectMaximumDelay: Duration
    /// Replies larger than this are a protocol error (protects against a hostile or broken server).
    public var maximumReplyBytes: Int
    /// `CLIENT SETNAME`, to tell Legation's connections apart in `CLIENT LIST`.
    public var clientName: String
    /// Under Sentinel: how often a connected client asks a sentinel which server is the primary, and
    /// drops its connection when it is another (after a failover the old primary can take writes until
    /// the sentinels get round to demoting it, which can take seconds).
    public var primaryCheckInterval: Duration = .seconds(1)

    /// The address of the server this configuration names directly (standalone), or the first
    /// sentinel or seed.
    public var address: Address { Address(host: host, port: port) }

    /// Parses one of the URL forms above.
    ///
    /// - Throws: `StoreError.configuration` with what is wrong (never the password).
    public init(url: String, tls: TLS = TLS(), clientName: String = "legation") throws(StoreError) {
        guard let separator = url.range(of: "://") else {
            throw StoreError(
                .configuration,
                "Redis URL must start with redis://, rediss://, redis+sentinel:// or redis+cluster:// (got \(Self.redacted(url)))")
        }
        let scheme = url[..<separator.lowerBound]
        var rest = url[separator.upperBound...]
        let secure: Bool
        let kind: String
        switch scheme {
        case "redis": (secure, kind) = (false, "standalone")
        case "rediss": (secure, kind) = (true, "standalone")
        case "redis+sentinel": (secure, kind) = (false, "sentinel")
        case "rediss+sentinel": (secure, kind) = (true, "sentinel")
        case "redis+cluster": (secure, kind) = (false, "cluster")
        case "rediss+cluster": (secure, kind) = (true, "cluster")
        default:
            throw StoreError(
                .configuration,
                "Redis URL must start with redis://, rediss://, redis+sentinel:// or redis+cluster:// (got \(Self.redacted(url)))")
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                username = Self.percentDecoded(userInfo[..<colon])
                password = Self.percentDecoded(userInfo[userInfo.index(after: colon)...])
            } else {
                // redis://secret@host is the password alone, as redis-cli reads it.
                password = Self.percentDecoded(userInfo)
            }
            if username?.isEmpty == true { username = nil }
        }
        var path: [Substring] = []
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
            rest = rest[..<slash]
        }
        let defaultPort = kind == "sentinel" ? 26379 : 6379
        let addresses = try rest.split(separator: ",", omittingEmptySubsequences: false).map { (part) throws(StoreError) in
            try Self.address(part, defaultPort: defaultPort)
        }
        guard let first = addresses.first else { throw StoreError(.configuration, "Redis URL has no host") }
        var database = 0
        func readDatabase(_ text: Substring?) throws(StoreError) {
            guard let text, !text.isEmpty else { return }
            guard let number = Int(text), (0...15_999).contains(number) else {
                throw StoreError(.configuration, "Redis database \(String(reflecting: String(text.prefix(20)))) is not a number")
            }
            database = number
        }
        switch kind {
        case "sentinel":
            guard let name = path.first, !name.isEmpty else {
                throw StoreError(
                    .configuration, "a redis+sentinel URL names the master after the sentinels: redis+sentinel://host:26379/mymaster")
            }
            guard name.utf8.count <= 256, name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw StoreError(.configuration, "Redis master name \(String(reflecting: String(name.prefix(64)))) is not a printable name")
            }
            guard path.count <= 2 else { throw StoreError(.configuration, "a redis+sentinel URL ends with /<master name>[/<db>]") }
            try readDatabase(path.count == 2 ? path[1] : nil)
            topology = .sentinel(masterName: String(name), sentinels: addresses)
        case "cluster":
            guard path.count <= 1 else { throw StoreError(.configuration, "a redis+cluster URL has no path") }
            try readDatabase(path.first)
            guard database == 0 else { throw StoreError(.configuration, "Redis Cluster has only database 0") }
            topology = .cluster(seeds: addresses)
        default:
            guard addresses.count == 1 else {
                throw StoreError(
                    .configuration,
                    "a redis:// URL names one server; list sentinels with redis+sentinel:// or cluster nodes with redis+cluster://")
            }
            guard path.count <= 1 else { throw StoreError(.configuration, "a redis:// URL ends with /<db>") }
            try readDatabase(path.first)
            topology = .standalone
        }
        self.host = first.host
        self.port = first.port
        self.tls = secure ? tls : nil
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = .seconds(5)
        self.commandTimeout = .seconds(5)
        self.reconnectInitialDelay = .milliseconds(100)
        self.reconnectMaximumDelay = .seconds(1)
        self.maximumReplyBytes = 512 << 20
        self.clientName = clientName
    }

    /// The same settings for one server at `address` (a node of a cluster, the primary a sentinel
    /// named): standalone, its TLS name checked against that host.
    public func node(_ address: Address) -> RedisConfiguration {
        var node = self
        node.host = address.host
        node.port = address.port
        node.topology = .standalone
        return node
    }

    /// The settings to talk to a sentinel: its credentials, no database.
    package func sentinel(_ address: Address) -> RedisConfiguration {
        var sentinel = node(address)
        sentinel.username = sentinelUsername
        sentinel.password = sentinelPassword
        sentinel.database = 0
        return sentinel
    }

    /// The URL without its password, for logs.
    public var redactedURL: String {
        let user = username.map { "\($0)\(password == nil ? "" : ":***")@" } ?? (password == nil ? "" : "***@")
        let secure = tls == nil ? "redis" : "rediss"
        switch topology {
        case .standalone:
            return "\(secure)://\(user)\(address)/\(database)"
        case .sentinel(let name, let sentinels):
            return "\(secure)+sentinel://\(user)\(sentinels.map(\.description).joined(separator: ","))/\(name)/\(database)"
        case .cluster(let seeds):
            return "\(secure)+cluster://\(user)\(seeds.map(\.description).joined(separator: ","))"
        }
    }

    private static func address(_ text: Substring, defaultPort: Int) throws(StoreError) -> Address {
        var host = String(text)
        var port = defaultPort
        if host.hasPrefix("[") {  // [::1]:6379
            guard let close = host.firstIndex(of: "]") else {
                throw StoreError(.configuration, "Redis URL has an unterminated IPv6 address")
            }
            let after = host[host.index(after: close)...]
            if after.hasPrefix(":") {
                guard let number = Int(after.dropFirst()), (1...65_535).contains(number) else {
                    throw StoreError(.configuration, "Redis port \(String(after.dropFirst().prefix(10))) is not 1...65535")
                }
                port = number
            } else if !after.isEmpty {
                throw StoreError(.configuration, "Redis URL has \(String(after.prefix(10))) after an IPv6 address")
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]), (1...65_535).contains(number) else {
                throw StoreError(.configuration, "Redis port \(String(host[host.index(after: colon)...].prefix(10))) is not 1...65535")
            }
            port = number
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw StoreError(.configuration, "Redis URL has an empty host") }
        return Address(host: host, port: port)
    }

    private static func redacted(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@") else { return String(url.prefix(100)) }
        return "***" + url[at...].prefix(100)
    }

    private static func percentDecoded(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
