import NIOCore
import Shared
import SwiftProtobuf

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Decodes a stream's requests without decoding again what they repeat. Envoy sends its node (a few
/// KB: metadata, the list of its extensions) on every request unless told otherwise, and a state of
/// the world EDS ACK names every cluster again; after the first request, the node is skipped (the
/// machines read it from the first request only), and names equal to the last request's are not
/// decoded: the last array is reused, which also makes the machine's "same names" check O(1).
///
/// Names it does decode are swapped for the snapshot's own strings of the same names
/// (`XDSStreamMachine.shareNames`), so a thousand streams naming the same hundred clusters hold one
/// copy of each name, not a thousand; the last names are kept only as that array.
struct RequestReader<Machine: XDSStreamMachine> {
    private var nodeSeen = false
    /// The last request's names, as decoded and shared.
    private var lastNames: [String]?

    /// Reads a message in place (no copy of it is made).
    mutating func read(_ message: ByteBuffer, snapshot: ResourceSnapshot) throws -> Machine.WireRequest {
        try message.withUnsafeReadableBytes { try read($0, snapshot: snapshot) }
    }

    mutating func read(_ bytes: [UInt8], snapshot: ResourceSnapshot = .empty) throws -> Machine.WireRequest {
        try bytes.withUnsafeBytes { try read($0, snapshot: snapshot) }
    }

    /// One pass over the top-level fields: names compared with the last request's as they come, the
    /// rest (but the node after the first request) gathered for the decoder.
    mutating func read(_ bytes: UnsafeRawBufferPointer, snapshot: ResourceSnapshot) throws -> Machine.WireRequest {
        let namesField = Machine.requestRepeatedNamesField ?? -1
        let skipNode = nodeSeen
        var kept: [UInt8] = []
        var namesSeen = 0
        var namesMatch = lastNames != nil
        var sawNode = false
        var offset = 0
        while offset < bytes.count {
            // Not well-formed: the decoder says why.
            guard let field = WireFormat.field(in: bytes, at: offset) else { return try Machine.WireRequest(serializedBytes: Array(bytes)) }
            if field.number == namesField {
                // Length-delimited (wire type 2, the tag's low bits) and the same text; anything else goes
                // to the decoder, which makes of it what a plain decode would.
                if namesMatch, let last = lastNames, namesSeen < last.count, bytes[offset] & 0x7 == 2 {
                    namesMatch = Self.equal(last[namesSeen], UnsafeRawBufferPointer(rebasing: bytes[field.value]))
                } else {
                    namesMatch = false
                }
                namesSeen += 1
            } else if field.number == Machine.requestNodeField {
                sawNode = true
                if !skipNode { kept.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<field.end])) }
            } else {
                kept.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<field.end]))
            }
            offset = field.end
        }
        if sawNode { nodeSeen = true }
        if namesField >= 0, namesMatch, let last = lastNames, namesSeen == last.count {
            var request = try Machine.WireRequest(serializedBytes: kept)
            Machine.setNames(last, of: &request)
            return request
        }
        var request: Machine.WireRequest
        if namesField >= 0, namesSeen > 0 {
            // New names: appended after the rest and decoded with it (the order of other fields is
            // kept, and protobuf allows any order between fields of different numbers).
            offset = 0
            while offset < bytes.count, let field = WireFormat.field(in: bytes, at: offset) {
                if field.number == namesField { kept.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<field.end])) }
                offset = field.end
            }
        }
        request = try Machine.WireRequest(serializedBytes: kept)
        Machine.shareNames(of: &request, with: snapshot)
        if namesField >= 0 { lastNames = Machine.names(of: request) }
        return request
    }

    /// Whether `name`'s UTF-8 is `bytes`.
    private static func equal(_ name: String, _ bytes: UnsafeRawBufferPointer) -> Bool {
        let utf8 = name.utf8
        guard utf8.count == bytes.count else { return false }
        if let same = utf8.withContiguousStorageIfAvailable({ $0.isEmpty || memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 })
        {
            return same
        }
        return utf8.elementsEqual(bytes)
    }
}
