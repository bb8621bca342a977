/// The right to write one source's data: who holds it and the fencing epoch that every write carries.
/// Epochs only grow, even across a loss of Redis data, so a deposed writer can never write again.
public struct Lease: Hashable, Sendable, CustomStringConvertible {
    public let source: SourceCluster
    public let holder: String
    public let epoch: UInt64

    public init(source: SourceCluster, holder: String, epoch: UInt64) {
        self.source = source
        self.holder = holder
        self.epoch = epoch
    }

    public var description: String { "\(source) lease of \(holder) at epoch \(epoch)" }
}
