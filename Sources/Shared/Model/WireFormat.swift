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
    package static func varintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    /// A length-delimited field's tag and length.
    package static func appendField(_ number: UInt64, length: Int, to bytes: inout [UInt8]) {
        appendVarint(number << 3 | 2, to: &bytes)
        appendVarint(UInt64(length), to: &bytes)
    }

    /// A string field (omitted when empty, as proto3 does).
    package static func appendString(_ number: UInt64, _ text: String, to bytes: inout [UInt8]) {
        guard !text.isEmpty else { return }
        appendField(number, length: text.utf8.count, to: &bytes)
        bytes.append(contentsOf: text.utf8)
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
        bytes.reserveCapacity(
            content.isEmpty ? 64 + ports.reduce(0) { $0 + $1.wire.count + 3 } + endpoints.reduce(0) { $0 + $1.wire.count + 3 } : 64 + content.count)
        WireFormat.appendVarintField(1, UInt64(currentSchemaVersion.rawValue), to: &bytes)
        WireFormat.appendString(2, source.name, to: &bytes)
        WireFormat.appendString(3, service.namespace, to: &bytes)
        WireFormat.appendString(4, service.name, to: &bytes)
        WireFormat.appendFixed64Field(5, contentHash, to: &bytes)
        if !content.isEmpty || (ports.isEmpty && endpoints.isEmpty) {
            bytes += content
        } else {
            for port in ports {
                WireFormat.appendField(6, length: port.wire.count, to: &bytes)
                bytes += port.wire
            }
            for endpoint in endpoints {
                let wire = endpoint.encoded
                WireFormat.appendField(7, length: wire.count, to: &bytes)
                bytes += wire
            }
        }
        WireFormat.appendVarintField(8, UInt64(bitPattern: publishedAtUnixMilliseconds), to: &bytes)
        WireFormat.appendVarintField(9, epoch, to: &bytes)
        return bytes
    }
}
