import Crypto
import Shared

/// A Lua script sent by its SHA-1 (EVALSHA), falling back to EVAL when the server does not know it yet.
public struct RedisScript: Sendable {
    public let source: String
    public let sha: String

    public init(_ source: String) {
        self.source = source
        self.sha = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined()
    }
}
