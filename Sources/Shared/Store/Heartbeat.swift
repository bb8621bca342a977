/// The writer's heartbeat, as stored; absent once its TTL ran out.
public struct Heartbeat: Hashable, Sendable {
    public var holder: String
    public var epoch: UInt64
    public var sentAtUnixMilliseconds: Int64
    /// Time left before it expires, as the store reports it.
    public var remainingMilliseconds: Int64

    public init(holder: String, epoch: UInt64, sentAtUnixMilliseconds: Int64, remainingMilliseconds: Int64) {
        self.holder = holder
        self.epoch = epoch
        self.sentAtUnixMilliseconds = sentAtUnixMilliseconds
        self.remainingMilliseconds = remainingMilliseconds
    }
}
