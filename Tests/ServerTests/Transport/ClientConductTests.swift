import NIOCore
import Testing

@testable import Server

/// What a client may not do too often, with the clock in the test's hands (the connection tests check
/// the same limits end to end, as GOAWAYs).
@Suite struct ClientConductTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func resetsAreCountedPerSecondFromTheFirst() throws {
        var conduct = ClientConduct(maximumResetsPerSecond: 3, minimumPingInterval: .seconds(5))
        for offset in 0..<3 { try conduct.streamReset(at: start + .milliseconds(Int64(offset) * 300)) }
        // A second after the first, the count starts again.
        for offset in 0..<3 { try conduct.streamReset(at: start + .milliseconds(1_100 + Int64(offset) * 10)) }
        do {
            try conduct.streamReset(at: start + .milliseconds(1_200))
            Issue.record("a fourth reset within a second was allowed")
        } catch {
            #expect(error.code == .enhanceYourCalm)
            #expect(error.reason == "more than 3 stream resets in a second")
        }
    }

    @Test func theThirdPingTooSoonEndsTheConnection() throws {
        var conduct = ClientConduct(maximumResetsPerSecond: 200, minimumPingInterval: .seconds(5))
        // Pings at the interval are fine, however many.
        for offset in 0..<10 { try conduct.ping(at: start + .seconds(Int64(offset) * 5)) }
        var now = start + .seconds(50)
        try conduct.ping(at: now)  // after the last: 5 s, fine
        now = now + .seconds(1)
        try conduct.ping(at: now)  // strike one
        now = now + .seconds(1)
        try conduct.ping(at: now)  // strike two
        now = now + .seconds(1)
        do {
            try conduct.ping(at: now)  // strike three
            Issue.record("a third ping too soon was allowed")
        } catch {
            #expect(error.code == .enhanceYourCalm && error.metric == "too_many_pings")
        }
    }
}
