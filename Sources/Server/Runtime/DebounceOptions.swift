/// How store changes are batched into pushes: a push happens once no change arrived for `quiet`, or
/// `maximum` after the first unpushed change, whichever is first (Istio's debounce, Contour's holdoff).
public struct DebounceOptions: Sendable, Hashable {
    public var quiet: Duration
    public var maximum: Duration

    /// Small by default: this product's point is speed.
    public init(quiet: Duration = .milliseconds(10), maximum: Duration = .milliseconds(100)) {
        self.quiet = quiet
        self.maximum = maximum
    }

    /// How long to wait still, given when the first and the last unpushed changes arrived; zero: push now.
    public func remaining(first: ContinuousClock.Instant, last: ContinuousClock.Instant, now: ContinuousClock.Instant) -> Duration {
        let untilQuiet = last + quiet - now
        let untilMaximum = first + maximum - now
        return max(.zero, min(untilQuiet, untilMaximum))
    }
}
