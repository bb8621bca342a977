/// The few protobuf encoding rules Legation writes by hand, to assemble records from values encoded
/// once (`Endpoint.wire`). The output is byte-for-byte what SwiftProtobuf writes for the same message;
/// a test compares them.
package enum WireFormat {
    package static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// How many bytes `appendVarint` writes for `value`.
    @inlinable package static func varintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// A length-delimited field's tag and length.
    package static func appendField(_ number: UInt64, length: Int, to bytes: inout [UInt8]) {
        appendVarint(number << 3 | 2, to: &bytes)
        appendVarint(UInt64(length), to: &bytes)
    }

    /// A length-delimited field holding `bytes` (an embedded message, or the UTF-8 of a string), written
    /// even when empty (map entries' keys and values, and message fields that are set, are).
    package static func appendLengthDelimited<Bytes: Collection>(_ number: UInt64, _ bytes: Bytes, to output: inout [UInt8])
    where Bytes.Element == UInt8 {
        appendField(number, length: bytes.count, to: &output)
        output.append(contentsOf: bytes)
    }

    // The same for the two kinds of bytes other modules pass. A generic called from another module runs
    // unspecialized, appending byte by byte through witness tables: more than half of the xds-server's
    // CPU building a 50,000-endpoint snapshot went there.
    package static func appendLengthDelimited(_ number: UInt64, _ bytes: [UInt8], to output: inout [UInt8]) {
        appendField(number, length: bytes.count, to: &output)
        output.append(contentsOf: bytes)
    }

    package static func appendLengthDelimited(_ number: UInt64, _ text: String.UTF8View, to output: inout [UInt8]) {
        appendField(number, length: text.count, to: &output)
        output.append(contentsOf: text)
    }

    /// `appendLengthDelimited` through a pointer, for callers that sized the output first: a field
    /// number below 16 (a one-byte tag), `value` at `target`. - Returns: where the field ends.
    package static func writeLengthDelimited(
        _ number: UInt8, _ value: UnsafeBufferPointer<UInt8>, to target: UnsafeMutablePointer<UInt8>
    ) -> UnsafeMutablePointer<UInt8> {
        precondition(number < 16)
        var cursor = target
        cursor.pointee = number << 3 | 2
        cursor += 1
        var length = UInt64(value.count)
        while length >= 0x80 {
            cursor.pointee = UInt8(truncatingIfNeeded: length) | 0x80
            cursor += 1
            length >>= 7
        }
        cursor.pointee = UInt8(length)
        cursor += 1
        if let source = value.baseAddress { cursor.update(from: source, count: value.count) }
        return cursor + value.count
    }

    /// How many bytes a length-delimited field with a one-byte tag and `length` bytes of value takes.
    package static func lengthDelimitedSize(_ length: Int) -> Int {
        1 + varintSize(UInt64(length)) + length
    }

    /// A string field (omitted when empty, as proto3 does).
    package static func appendString(_ number: UInt64, _ text: String, to bytes: inout [UInt8]) {
        guard !text.isEmpty else { return }
        appendLengthDelimited(number, text.utf8, to: &bytes)
    }

    /// A varint field (omitted when zero).
    package static func appendVarintField(_ number: UInt64, _ value: UInt64, to bytes: inout [UInt8]) {
        guard value != 0 else { return }
        appendVarint(number << 3, to: &bytes)
        appendVarint(value, to: &bytes)
    }

    /// A fixed64 field (omitted when zero).
    package static func appendFixed64Field(_ number: UInt64, _ value: UInt64, to bytes: inout [UInt8]) {
        guard value != 0 else { return }
        appendVarint(number << 3 | 1, to: &bytes)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}

extension EndpointSet {
    /// The encoded `EndpointSetRecord` of this set, assembled from the values' encodings: the same
    /// bytes as `record(epoch:publishedAtUnixMilliseconds:).serializedBytes()`, without re-encoding.
    public func recordBytes(epoch: UInt64, publishedAtUnixMilliseconds: Int64) -> [UInt8] {
        var bytes: [UInt8] = []
        // Sets decoded from a record keep no content (readers never write): assembled here for them.
        let content = self.content.isEmpty ? Self.contentBytes(ports: ports, endpoints: endpoints) : self.content
        bytes.reserveCapacity(64 + source.name.utf8.count + service.namespace.utf8.count + service.name.utf8.count + content.count)
        WireFormat.appendVarintField(1, UInt64(currentSchemaVersion.rawValue), to: &bytes)
        WireFormat.appendString(2, source.name, to: &bytes)
        WireFormat.appendString(3, service.namespace, to: &bytes)
        WireFormat.appendString(4, service.name, to: &bytes)
        WireFormat.appendFixed64Field(5, contentHash, to: &bytes)
        bytes += content
        WireFormat.appendVarintField(8, UInt64(bitPattern: publishedAtUnixMilliseconds), to: &bytes)
        WireFormat.appendVarintField(9, epoch, to: &bytes)
        if let failover { WireFormat.appendString(10, failover.description, to: &bytes) }
        return bytes
    }
}

/// Reading: what a transport or a load generator needs to split a message into its top-level fields.
/// Over raw bytes, not generic over collections: a transport scans every request's fields, and a
/// generic body called from another module runs unspecialized (witness calls and a retain per byte).
extension WireFormat {
    /// The varint at `index`, moving `index` past it; nil if the bytes end inside it.
    package static func readVarint(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.count, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// The top-level field that starts at `offset`: its number, its value's offsets (empty for varint
    /// and fixed fields) and where it ends; nil if it is not all in `bytes` or is not well-formed
    /// (groups included: xDS does not use them).
    package static func field(in bytes: UnsafeRawBufferPointer, at offset: Int) -> (number: Int, value: Range<Int>, end: Int)? {
        var index = offset
        guard let tag = readVarint(bytes, &index), tag >> 3 > 0, tag >> 3 <= UInt64(Int32.max) else { return nil }
        let number = Int(tag >> 3)
        switch tag & 7 {
        case 0: return readVarint(bytes, &index).map { _ in (number, index..<index, index) }
        case 1: return index + 8 <= bytes.count ? (number, index..<index, index + 8) : nil
        case 5: return index + 4 <= bytes.count ? (number, index..<index, index + 4) : nil
        case 2:
            guard let length = readVarint(bytes, &index), length <= UInt64(bytes.count - index) else { return nil }
            return (number, index..<(index + Int(length)), index + Int(length))
        default: return nil
        }
    }

    /// `field(in:at:)` in an array (offsets from its start).
    package static func field(in bytes: [UInt8], at offset: Int) -> (number: Int, value: Range<Int>, end: Int)? {
        bytes.withUnsafeBytes { field(in: $0, at: offset) }
    }

    /// `field(in:at:)` in a slice (offsets from the slice's start, not its parent's).
    package static func field(in bytes: ArraySlice<UInt8>, at offset: Int) -> (number: Int, value: Range<Int>, end: Int)? {
        bytes.withUnsafeBytes { field(in: $0, at: offset) }
    }
}

/// Writes protobuf fields through a pointer into bytes sized beforehand (`WireFormat`'s sizes): no
/// capacity check or uniqueness test per byte, as appending to an array has. Inlined into callers in
/// other modules, where encoding a snapshot's endpoints spends its time.
package struct WireWriter {
    @usableFromInline package var cursor: UnsafeMutablePointer<UInt8>

    @inlinable package init(_ start: UnsafeMutablePointer<UInt8>) { cursor = start }

    @inlinable package mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            cursor.pointee = UInt8(truncatingIfNeeded: value) | 0x80
            cursor += 1
            value >>= 7
        }
        cursor.pointee = UInt8(truncatingIfNeeded: value)
        cursor += 1
    }

    /// A length-delimited field's tag (a field number below 16: one byte) and length.
    @inlinable package mutating func field(_ number: UInt8, length: Int) {
        cursor.pointee = number << 3 | 2
        cursor += 1
        varint(UInt64(length))
    }

    /// A length-delimited field holding `text`'s UTF-8, written even when empty.
    @inlinable package mutating func lengthDelimited(_ number: UInt8, _ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            field(number, length: utf8.count)
            if let base = utf8.baseAddress { cursor.update(from: base, count: utf8.count) }
            cursor += utf8.count
        }
    }

    /// A string field, omitted when empty (proto3).
    @inlinable package mutating func string(_ number: UInt8, _ text: String) {
        if !text.isEmpty { lengthDelimited(number, text) }
    }

    /// A varint field's tag (a field number below 16) and value, written even when zero.
    @inlinable package mutating func varintField(_ number: UInt8, _ value: UInt64) {
        cursor.pointee = number << 3
        cursor += 1
        varint(value)
    }
}
