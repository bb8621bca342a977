import Shared

/// Reads only what a load generator needs from an encoded response, without decoding the resources:
/// the top-level fields, and a resource's name (field 1 of Cluster and ClusterLoadAssignment alike).
public enum MiniProtobuf {
    /// (field number, value bytes) for each length-delimited top-level field; varints and fixed fields
    /// are skipped, and reading stops at bytes that are not well-formed.
    public static func fields(_ bytes: ArraySlice<UInt8>) -> [(number: Int, value: ArraySlice<UInt8>)] {
        var fields: [(number: Int, value: ArraySlice<UInt8>)] = []
        var offset = 0
        while offset < bytes.count, let field = WireFormat.field(in: bytes, at: offset) {
            if bytes[bytes.startIndex + offset] & 7 == 2 {  // the wire type is in the tag's first byte
                fields.append(
                    (field.number, bytes[(bytes.startIndex + field.value.lowerBound)..<(bytes.startIndex + field.value.upperBound)]))
            }
            offset = field.end
        }
        return fields
    }

    /// The first length-delimited field numbered `number`, found without reading the fields after it
    /// (a resource's name is its first field; its endpoints, the bulk of it, are never walked).
    static func first(_ number: Int, in bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        var offset = 0
        while offset < bytes.count, let field = WireFormat.field(in: bytes, at: offset) {
            if field.number == number, bytes[bytes.startIndex + offset] & 7 == 2 {
                return bytes[(bytes.startIndex + field.value.lowerBound)..<(bytes.startIndex + field.value.upperBound)]
            }
            offset = field.end
        }
        return nil
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The `value` of an `Any` (type_url 1, value 2).
    static func valueOfAny(_ any: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        first(2, in: any)
    }

    /// The `name` of the resource inside an `Any`.
    static func nameInAny(_ any: ArraySlice<UInt8>) -> String? {
        guard let value = valueOfAny(any) else { return nil }
        return first(1, in: value).map(string)
    }
}
