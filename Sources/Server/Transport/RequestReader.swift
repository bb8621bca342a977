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
    private var lastNames: (bytes: [UInt8], names: [String])?

    mutating func read(_ bytes: [UInt8]) throws -> Machine.WireRequest {
        guard let fields = Self.fields(of: bytes) else { return try Machine.WireRequest(serializedBytes: bytes) }
        let namesField = Machine.requestRepeatedNamesField
        let skipNode = nodeSeen
        var namesCount = 0
        var skipped = 0
        for field in fields {
            if field.number == namesField { namesCount += field.range.count }
            if field.number == namesField || (skipNode && field.number == Machine.requestNodeField) { skipped += 1 }
        }
        if fields.contains(where: { $0.number == Machine.requestNodeField }) { nodeSeen = true }
        guard skipped > 0 else { return try Machine.WireRequest(serializedBytes: bytes) }
        // The same names as last time, byte for byte?
        if namesField != nil, let lastNames, lastNames.bytes.count == namesCount,
            Self.names(in: bytes, fields, field: namesField, equal: lastNames.bytes)
        {
            var kept: [UInt8] = []
            kept.reserveCapacity(bytes.count - namesCount)
            for field in fields where field.number != namesField && !(skipNode && field.number == Machine.requestNodeField) {
                kept += bytes[field.range]
            }
            var request = try Machine.WireRequest(serializedBytes: kept)
            Machine.setNames(lastNames.names, of: &request)
            return request
        }
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        var names: [UInt8] = []
        names.reserveCapacity(namesCount)
        for field in fields where !(skipNode && field.number == Machine.requestNodeField) {
            if field.number == namesField { names += bytes[field.range] } else { kept += bytes[field.range] }
        }
        let request = try Machine.WireRequest(serializedBytes: kept + names)
        if namesField != nil { lastNames = (names, Machine.names(of: request)) }
        return request
    }

    /// Whether the concatenated ranges of `field` in `bytes` equal `expected` (of the same length).
    private static func names(in bytes: [UInt8], _ fields: [(number: Int, range: Range<Int>)], field: Int?, equal expected: [UInt8]) -> Bool
    {
        bytes.withUnsafeBytes { bytes in
            expected.withUnsafeBytes { expected in
                var offset = 0
                for entry in fields where entry.number == field {
                    guard
                        entry.range.isEmpty
                            || memcmp(bytes.baseAddress! + entry.range.lowerBound, expected.baseAddress! + offset, entry.range.count) == 0
                    else { return false }
                    offset += entry.range.count
                }
                return true
            }
        }
    }

    /// The top-level fields of a message, as byte ranges; nil if the bytes are not well-formed (the
    /// decoder then says why).
    static func fields(of bytes: [UInt8]) -> [(number: Int, range: Range<Int>)]? {
        var fields: [(number: Int, range: Range<Int>)] = []
        var offset = 0
        while offset < bytes.count {
            guard let field = WireFormat.field(in: bytes, at: offset) else { return nil }
            fields.append((field.number, offset..<field.end))
            offset = field.end
        }
        return fields
    }
}
