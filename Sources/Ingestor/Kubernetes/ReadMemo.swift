/// What one stream's earlier documents were read as: a watch stream sends each EndpointSlice whole on
/// every change, and most of its endpoints are byte for byte what they were. For each slice, the
/// endpoints last read, by the digest of their JSON bytes; an endpoint whose bytes match is skipped
/// (validated, not built) and the earlier value reused.
///
/// Owned by one stream and used by one reader at a time (the watch task that made it), hence
/// `@unchecked Sendable`. Entries are replaced on each read of their slice; a deleted slice's entry
/// lives until the stream ends (watches end every few minutes).
public final class ReadMemo: @unchecked Sendable {
    var endpointsBySlice: [String: [UInt64: EndpointSliceObject.Endpoint]] = [:]

    public init() {}

    /// How many slices it holds endpoints of.
    public var sliceCount: Int { endpointsBySlice.count }
}
