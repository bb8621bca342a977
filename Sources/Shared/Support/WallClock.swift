#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The wall clock and random identities the stores stamp into records (publish times, generations).
package enum WallClock {
    /// Milliseconds since 1970, UTC.
    package static func milliseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000
    }

    /// Milliseconds since 1970, UTC, signed as the records store them.
    package static var nowUnixMilliseconds: Int64 { Int64(milliseconds()) }

    /// A new random generation identity (16 hex digits at most).
    package static func newGeneration() -> String {
        String(UInt64.random(in: 1...UInt64.max), radix: 16)
    }
}
