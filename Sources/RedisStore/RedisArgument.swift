/// One argument of a Redis command: text or binary.
public struct RedisArgument: Sendable, Hashable, ExpressibleByStringLiteral {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public init(_ text: String) { self.bytes = Array(text.utf8) }
    public init<Number: BinaryInteger>(_ number: Number) { self.bytes = Array(String(number).utf8) }
    public init(stringLiteral value: String) { self.init(value) }
}
