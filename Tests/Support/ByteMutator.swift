/// Seeded input mutation for the fuzz tests (JSON from Kubernetes, Redis records, xDS requests).

/// A seeded generator, so a fuzz failure repeats.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mutations that hit JSON's grammar where parsers differ (structure bytes, quotes and escapes,
/// literals, numbers, invalid UTF-8, cut and repeated spans) and binary formats' length prefixes and
/// varints (any byte, cut and repeated spans).
public enum ByteMutator {
    static let interesting: [UInt8] = Array(#"{}[]",:\0-.eE+ntfu"#.utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xFF, UInt8(ascii: "\n")]

    /// The mutated bytes around the first difference from the seed, non-printable bytes escaped.
    public static func firstChange(from seed: [UInt8], to input: [UInt8]) -> String {
        let first = (0..<min(seed.count, input.count)).first { seed[$0] != input[$0] } ?? min(seed.count, input.count)
        let window = input[max(0, first - 20)..<min(input.count, first + 20)]
        return window.map { (0x20...0x7E).contains($0) ? String(UnicodeScalar($0)) : "\\x\(String($0, radix: 16))" }.joined()
    }

    public static func mutate(_ seed: [UInt8], using random: inout SplitMix64) -> [UInt8] {
        var bytes = seed
        for _ in 0..<Int.random(in: 1...3, using: &random) where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0: bytes[at] = interesting.randomElement(using: &random)!
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &random)
            case 2: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...16, using: &random)))
            case 3:
                let span = bytes[at..<min(bytes.count, at + Int.random(in: 1...32, using: &random))]
                bytes.insert(contentsOf: span, at: at)
            case 4: bytes.insert(interesting.randomElement(using: &random)!, at: at)
            default: bytes.removeSubrange(at...)
            }
        }
        return bytes
    }
}
