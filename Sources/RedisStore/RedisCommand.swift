import Shared

/// One command and the key it is about (nil: none).
public struct RedisCommand: Sendable {
    public var key: String?
    public var arguments: [RedisArgument]

    public init(key: String?, _ arguments: [RedisArgument]) {
        self.key = key
        self.arguments = arguments
    }
}
