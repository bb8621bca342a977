/// The checks every xDS request gets, state of the world or delta: a served type URL, sane names, a sane
/// node. One place, so both protocols refuse the same input with the same words.
enum RequestValidation {
    /// The type a request is for: its type URL, or the only type of a single-type stream.
    static func type(of typeURL: String, allowed: Set<ResourceType>) -> Result<ResourceType, XDSError> {
        if typeURL.isEmpty {
            guard allowed.count == 1, let only = allowed.first else {
                return .failure(XDSError(.invalidArgument, "type_url is required on an aggregated stream"))
            }
            return .success(only)
        }
        guard let known = ResourceType(rawValue: typeURL), allowed.contains(known) else {
            let served = allowed.sorted().map(\.typeURL).joined(separator: ", ")
            return .failure(
                XDSError(
                    .invalidArgument,
                    "type URL \(String(reflecting: String(typeURL.prefix(200)))) is not served on this stream (served: \(served))"))
        }
        return .success(known)
    }

    /// - Returns: why these names (`count` of them) are refused, or nil.
    static func check<Names: Sequence<String>>(names: Names, count: Int, limits: StreamLimits) -> XDSError? {
        if count > limits.maximumResourceNames {
            return XDSError(.resourceExhausted, "\(count) resource names in one request; the limit is \(limits.maximumResourceNames)")
        }
        for name in names where name.isEmpty || name.utf8.count > limits.maximumResourceNameBytes {
            return XDSError(
                .invalidArgument, "resource name of \(name.utf8.count) bytes; names must have 1 to \(limits.maximumResourceNameBytes) bytes"
            )
        }
        return nil
    }

    /// - Returns: why this node is refused, or nil.
    static func check(node: ClientNode?, limits: StreamLimits) -> XDSError? {
        guard let node, node.id.utf8.count > limits.maximumNodeFieldBytes || node.cluster.utf8.count > limits.maximumNodeFieldBytes else {
            return nil
        }
        return XDSError(.invalidArgument, "node id or cluster longer than \(limits.maximumNodeFieldBytes) bytes")
    }
}
