/// Exponential backoff with jitter, for every retry loop in Legation (store reconnects, publish retries,
/// watch restarts), so that many processes retrying at once spread out.
public enum Backoff {
    /// `initial × 2^(attempt-1)`, capped at `maximum`, times a random factor in [0.5, 1.5).
    public static func delay(attempt: Int, initial: Duration, maximum: Duration) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let base = min(initial * (1 << exponent), maximum)
        return base * Double.random(in: 0.5..<1.5)
    }
}
