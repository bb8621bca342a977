/// What a write did.
public enum WriteOutcome: Hashable, Sendable {
    /// Written at this source revision.
    case written(revision: UInt64)
    /// The stored content already had this hash (or the deleted service was absent): nothing written.
    case unchanged
}
