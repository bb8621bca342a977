#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one stream's earlier documents were read as: a watch stream sends each EndpointSlice whole on
/// every change, and most of its endpoints are byte for byte what they were. For each slice, the
/// endpoints last read with their JSON bytes: an endpoint whose bytes equal an earlier one's (compared
/// in full, first at the same position, then by digest) is skipped, not read again, and the earlier
/// value reused. The bytes are kept (about the slice's JSON size per slice) so that reuse never rests
/// on a digest alone.
///
/// Owned by one stream and used by one reader at a time (the watch task that made it), hence
/// `@unchecked Sendable`. Entries are replaced on each read of their slice; a deleted slice's entry
/// lives until the stream ends (watches end every few minutes).
public final class ReadMemo: @unchecked Sendable {
    /// One slice's endpoints as last read: `bytes` holds their JSON back to back, `ends[i]` where the
    /// i-th ends in it.
    struct Slice {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        var endpoints: [EndpointSliceObject.Endpoint] = []
        var digests: [UInt64] = []

        var count: Int { endpoints.count }

        func span(_ index: Int) -> Range<Int> { (index == 0 ? 0 : ends[index - 1])..<ends[index] }

        /// Whether the i-th endpoint's bytes are `candidate`.
        func matches(_ index: Int, _ candidate: UnsafeBufferPointer<UInt8>) -> Bool {
            let span = span(index)
            guard span.count == candidate.count else { return false }
            return bytes.withUnsafeBufferPointer { stored in
                guard let base = stored.baseAddress, let other = candidate.baseAddress else { return span.isEmpty }
                return memcmp(base + span.lowerBound, other, span.count) == 0
            }
        }

        /// Adds an endpoint and its bytes (`digests` is set once, from the reader's).
        mutating func append(_ endpoint: EndpointSliceObject.Endpoint, bytes source: UnsafeBufferPointer<UInt8>) {
            bytes.append(contentsOf: source)
            ends.append(bytes.count)
            endpoints.append(endpoint)
        }
    }

    var slices: [String: Slice] = [:]

    public init() {}

    /// How many slices it holds endpoints of.
    public var sliceCount: Int { slices.count }
}
