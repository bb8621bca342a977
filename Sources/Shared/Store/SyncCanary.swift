/// The sync canary: the writer finished its initial list of this generation.
public struct SyncCanary: Hashable, Sendable {
    public var generation: String
    public var epoch: UInt64
    public var holder: String
    public var syncedAtUnixMilliseconds: Int64
    public var serviceCount: UInt64

    public init(generation: String, epoch: UInt64, holder: String, syncedAtUnixMilliseconds: Int64, serviceCount: UInt64) {
        self.generation = generation
        self.epoch = epoch
        self.holder = holder
        self.syncedAtUnixMilliseconds = syncedAtUnixMilliseconds
        self.serviceCount = serviceCount
    }
}
