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
/// machines read it from the first request only), and names whose bytes equal the last request's are
/// not decoded: the last array is reused, which also makes the machine's "same names" check O(1).
struct RequestReader<Machine: XDSStreamMachine> {
    private var nodeSeen = false
    /// The last names, as their fields' bytes and decoded.
    private var lastNames: (bytes: [UInt8], names: [String])?

    /// Reads a message in place (no copy of it is made).
    mutating func read(_ message: ByteBuffer) throws -> Machine.WireRequest {
        try message.withUnsafeReadableBytes { try read($0) }
    }

    mutating func read(_ bytes: [UInt8]) throws -> Machine.WireRequest {
        try bytes.withUnsafeBytes { try read($0) }
    }

    /// One pass over the top-level fields: names compared with the last request's as they come, the
    /// rest (but the node after the first request) gathered for the decoder.
    mutating func read(_ bytes: UnsafeRawBufferPointer) throws -> Machine.WireRequest {
        let namesField = Machine.requestRepeatedNamesField ?? -1
        let skipNode = nodeSeen
        var kept: [UInt8] = []
        var namesBytes = 0
        var namesMatch = lastNames != nil
        var sawNode = false
        var offset = 0
        while offset < bytes.count {
            // Not well-formed: the decoder says why.
            guard let field = WireFormat.field(in: bytes, at: offset) else { return try Machine.WireRequest(serializedBytes: Array(bytes)) }
            let encoded = UnsafeRawBufferPointer(rebasing: bytes[offset..<field.end])
            if field.number == namesField {
                if namesMatch, let last = lastNames?.bytes, namesBytes + encoded.count <= last.count {
                    namesMatch = last.withUnsafeBytes { memcmp($0.baseAddress! + namesBytes, encoded.baseAddress!, encoded.count) == 0 }
                } else {
                    namesMatch = false
                }
                namesBytes += encoded.count
            } else if field.number == Machine.requestNodeField {
                sawNode = true
                if !skipNode { kept.append(contentsOf: encoded) }
            } else {
                kept.append(contentsOf: encoded)
            }
            offset = field.end
        }
        if sawNode { nodeSeen = true }
        if namesField >= 0, namesMatch, let last = lastNames, namesBytes == last.bytes.count {
            var request = try Machine.WireRequest(serializedBytes: kept)
            Machine.setNames(last.names, of: &request)
            return request
        }
        guard namesField >= 0 else { return try Machine.WireRequest(serializedBytes: kept) }
        // New names: gathered in a second pass, decoded after the rest (the order of other fields is
        // kept, and protobuf allows any order between fields of different numbers).
        var names: [UInt8] = []
        names.reserveCapacity(namesBytes)
        offset = 0
        while offset < bytes.count, let field = WireFormat.field(in: bytes, at: offset) {
            if field.number == namesField { names.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<field.end])) }
            offset = field.end
        }
        let request = try Machine.WireRequest(serializedBytes: kept + names)
        lastNames = (names, Machine.names(of: request))
        return request
    }
}
