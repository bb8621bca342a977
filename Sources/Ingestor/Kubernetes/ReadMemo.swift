#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What one stream's earlier documents were read as: a watch stream sends each EndpointSlice whole on
/// every change, and most of its endpoints are byte for byte what they were. For each slice, the
/// endpoints last read and where their bytes are in the document they came from (kept whole: the
/// framer made it, so it is shared, not copied). An endpoint whose bytes equal an earlier one's
/// (compared in full, at the same position or a step or two off) is not read again: the earlier value
/// is handed out, the identical value, so the aggregator knows it unchanged too. Equal bytes are the
/// same complete JSON object, validated when first read, so nothing rests on a digest.
///
/// Owned by one stream and used by one reader at a time (the watch task that made it), hence
/// `@unchecked Sendable`. Entries are replaced on each read of their slice; a deleted slice's entry
/// lives until the stream ends (watches end every few minutes). Memory: about one event per slice.
public final class ReadMemo: @unchecked Sendable {
    /// One slice's endpoints as last read.
    struct Slice {
        /// The document they were read from.
        var document: [UInt8] = []
        /// Where each endpoint's bytes start and end in `document`.
        var starts: [Int32] = []
        var ends: [Int32] = []
        var endpoints: [EndpointSliceObject.Endpoint] = []

        var count: Int { endpoints.count }

        /// Whether the `index`-th endpoint's bytes are those at `offset` (`available` bytes from there to the end).
        func matches(_ index: Int, at offset: UnsafePointer<UInt8>, available: Int) -> Bool {
            let length = length(index)
            guard length <= available else { return false }
            return document.withUnsafeBufferPointer { stored in
                memcmp(stored.baseAddress! + Int(starts[index]), offset, length) == 0
            }
        }

        func length(_ index: Int) -> Int { Int(ends[index] - starts[index]) }
    }

    var slices: [String: Slice] = [:]
    /// The document being read now (set by the reader's caller; spans of the slice read from it refer to it).
    var document: [UInt8] = []

    public init() {}
}

extension JSONReader {
    /// An EndpointSlice's `endpoints` (an array, or null) read against what `previous` remembers of the
    /// slice: an endpoint whose bytes it holds is handed out again, the rest are read. `current` learns
    /// where each endpoint is in this document, for the next version.
    ///
    /// The array's grammar is followed here rather than through `readArray`'s per-element closure: with
    /// the memo state passed through that closure the events run measured 13–20 % fewer events per CPU
    /// second (five interleaved pairs).
    mutating func readEndpoints(remembering previous: ReadMemo.Slice, into current: inout ReadMemo.Slice) throws(Failure)
        -> [EndpointSliceObject.Endpoint]?
    {
        if readNull() { return nil }
        try expect(UInt8(ascii: "["), "an array")
        try enter()
        var endpoints: [EndpointSliceObject.Endpoint] = []
        endpoints.reserveCapacity(previous.count)
        current.starts.reserveCapacity(previous.count)
        current.ends.reserveCapacity(previous.count)
        skipWhitespace()
        if peekByte() == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            return endpoints
        }
        var next = 0
        while true {
            skipWhitespace()
            let start = position
            if let match = matchRemembered(previous, near: next) {
                next = match + 1
                endpoints.append(previous.endpoints[match])
            } else {
                endpoints.append(try EndpointSliceObject.Endpoint(reading: &self))
            }
            current.starts.append(Int32(truncatingIfNeeded: start))
            current.ends.append(Int32(truncatingIfNeeded: position))
            skipWhitespace()
            guard let byte = peekByte() else { throw failure("array not closed") }
            position += 1
            if byte == UInt8(ascii: "]") { break }
            guard byte == UInt8(ascii: ",") else { throw failure("expected ',' or ']', found \(Self.describe(byte))", at: position - 1) }
        }
        depth -= 1
        current.endpoints = endpoints
        return endpoints
    }

    /// Whether the value here is byte for byte one of `remembered`'s endpoints, looked for at `index`,
    /// then a step or two around it; if so, moves past it. - Returns: which one.
    mutating func matchRemembered(_ remembered: ReadMemo.Slice, near index: Int) -> Int? {
        guard remembered.count > 0, let base = bytes.baseAddress, position < bytes.count, base[position] == UInt8(ascii: "{") else {
            return nil
        }
        let here = base + position
        let available = bytes.count - position
        guard let match = nearbyMatch(index, count: remembered.count, { remembered.matches($0, at: here, available: available) }) else {
            return nil
        }
        position += remembered.length(match)
        return match
    }
}

/// The first index in `0..<count` for which `matches` holds, tried at `index`, then `index + 1`,
/// `index - 1` and `index + 2`: where a list's next element is after one just found (the same place),
/// or after an element was inserted or removed before it. The watch memo and the aggregator follow a
/// slice's endpoints from one version to the next with it.
func nearbyMatch(_ index: Int, count: Int, _ matches: (Int) -> Bool) -> Int? {
    let candidates: InlineArray<4, Int> = [index, index + 1, index - 1, index + 2]
    for slot in candidates.indices {
        let candidate = candidates[slot]
        if candidate >= 0, candidate < count, matches(candidate) { return candidate }
    }
    return nil
}
