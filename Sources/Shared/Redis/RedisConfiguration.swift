/// How to reach Redis. Built from a URL plus options that do not belong in one (secrets from files,
/// certificates); validated on construction so a bad setting fails at startup with a clear message.
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

    public var host: String
    public var port: Int
    /// Set for `rediss://` URLs.
    public var tls: TLS?
    /// ACL user name; nil = the `default` user.
    public var username: String?
    public var password: String?
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

    /// Parses `redis://[user[:password]@]host[:port][/db]` or `rediss://...` (TLS).
    ///
    /// - Throws: `StoreError.configuration` with what is wrong.
    public init(url: String, tls: TLS = TLS(), clientName: String = "legation") throws(StoreError) {
        let scheme: String
        var rest: Substring
        if url.hasPrefix("redis://") {
            scheme = "redis"
            rest = url.dropFirst("redis://".count)
        } else if url.hasPrefix("rediss://") {
            scheme = "rediss"
            rest = url.dropFirst("rediss://".count)
        } else {
            throw StoreError(.configuration, "Redis URL must start with redis:// or rediss:// (got \(Self.redacted(url)))")
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
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard let number = Int(path), (0...15_999).contains(number) else {
                    throw StoreError(.configuration, "Redis database \(String(reflecting: String(path.prefix(20)))) is not a number")
                }
                database = number
            }
        }
        var host = String(rest)
        var port = 6379
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
            }
            host = String(host[host.index(after: host.startIndex)..<close])
        } else if let colon = host.lastIndex(of: ":") {
            guard let number = Int(host[host.index(after: colon)...]), (1...65_535).contains(number) else {
                throw StoreError(.configuration, "Redis port \(String(host[host.index(after: colon)...].prefix(10))) is not 1...65535")
            }
            port = number
            host = String(host[..<colon])
        }
        guard !host.isEmpty else { throw StoreError(.configuration, "Redis URL has no host") }
        self.host = host
        self.port = port
        self.tls = scheme == "rediss" ? tls : nil
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

    /// The URL without its password, for logs.
    public var redactedURL: String {
        let user = username.map { "\($0)\(password == nil ? "" : ":***")@" } ?? (password == nil ? "" : "***@")
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return "\(tls == nil ? "redis" : "rediss")://\(user)\(hostPart):\(port)/\(database)"
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
