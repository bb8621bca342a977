/// Where the objects nested in one framed object end, by where they start (byte offsets in it), in
/// the order they start. Made by the framer's scan, which follows strings and escapes: for well-formed
/// JSON these are the objects' true extents. A reader using them must still check what it skips: for
/// malformed input the extents may be anything.
public struct ObjectEnds: Sendable {
    /// (start, end) pairs by start; end -1 while open.
    private var spans: [(start: Int32, end: Int32)] = []

    public init() {}

    init(capacity: Int) {
        spans.reserveCapacity(capacity)
    }

    var count: Int { spans.count }

    mutating func append(start: Int) {
        spans.append((Int32(truncatingIfNeeded: start), -1))
    }

    mutating func setEnd(_ index: Int, to end: Int) {
        spans[index].end = Int32(truncatingIfNeeded: end)
    }

    /// The offset just past the object that starts at `start`, if one does and it was closed.
    public func end(ofObjectAt start: Int) -> Int? {
        var low = 0
        var high = spans.count
        let target = Int32(truncatingIfNeeded: start)
        while low < high {
            let middle = (low + high) / 2
            if spans[middle].start < target { low = middle + 1 } else { high = middle }
        }
        guard low < spans.count, spans[low].start == target, spans[low].end > target else { return nil }
        return Int(spans[low].end)
    }
}
