import LegationTestSupport
import SwiftProtobuf
import Testing

@testable import Shared

@Suite struct ModelTests {
    @Test(arguments: ["", "-a", "a-", "A", "a_b", "a.b", String(repeating: "a", count: 64), "{x}", "a b"])
    func namesThatAreNotDNSLabelsAreRefused(_ name: String) {
        #expect(throws: ModelError.self) { try SourceCluster(name) }
        #expect(throws: ModelError.self) { try ServiceKey(namespace: "default", name: name) }
        #expect(throws: ModelError.self) { try ServiceKey(namespace: name, name: "web") }
    }

    @Test func serviceKeysParseTheirOwnDescription() throws {
        let key = try ServiceKey(namespace: "payments", name: "ledger-v2")
        #expect(try ServiceKey(parsing: key.description) == key)
        for bad in ["payments", "a/b/c", "/web", "payments/", "Payments/web"] {
            #expect(throws: ModelError.self) { try ServiceKey(parsing: bad) }
        }
    }

    @Test func addressesAreStoredInCanonicalForm() throws {
        #expect(try Endpoint(address: "fd00:0:0:0::05", targetPorts: []).address == "fd00::5")
        #expect(try Endpoint(address: "10.0.0.1", targetPorts: []).isIPv6 == false)
        for bad in ["", "10.0.0", "10.0.0.256", "host.example", "fd00::g", "10.0.0.1/24", "::ffff:1.2.3.4.5"] {
            #expect(throws: ModelError.self) { try Endpoint(address: bad, targetPorts: []) }
        }
        #expect(throws: ModelError.self) { try Endpoint(address: "10.0.0.1", targetPorts: [], zone: "zone a") }
        #expect(throws: ModelError.self) { try ServicePort(name: "http", port: 0) }
        #expect(throws: ModelError.self) { try ServicePort(name: "HTTP", port: 80) }
    }

    @Test func setsAreSortedAndTheirHashIgnoresInputOrder() throws {
        let source = try SourceCluster("cluster-a")
        let service = try ServiceKey(namespace: "default", name: "web")
        let port = try ServicePort(name: "http", port: 80)
        let a = try Endpoint(address: "10.0.0.2", targetPorts: [8080], zone: "z1")
        let b = try Endpoint(address: "10.0.0.1", targetPorts: [8080], zone: "z2")
        let one = try EndpointSet(source: source, service: service, ports: [port], endpoints: [a, b])
        let two = try EndpointSet(source: source, service: service, ports: [port], endpoints: [b, a])
        #expect(one == two)
        #expect(one.contentHash == two.contentHash)
        #expect(one.endpoints.map(\.address) == ["10.0.0.1", "10.0.0.2"])

        let draining = try Endpoint(
            address: "10.0.0.2", targetPorts: [8080], zone: "z1",
            conditions: .init(ready: false, serving: true, terminating: true))
        let three = try EndpointSet(source: source, service: service, ports: [port], endpoints: [b, draining])
        #expect(three.contentHash != one.contentHash)
    }

    /// The content hash is stored in Redis and compared across versions: it must never change for the
    /// same content. If this fails, the hash function or the canonical encoding changed.
    @Test func contentHashIsStable() throws {
        let set = Fixtures.endpointSet("web", count: 3)
        #expect(String(set.contentHash, radix: 16) == "f4f81765bb2c83f1")
    }

    @Test func invariantsAreEnforced() throws {
        let source = try SourceCluster("c")
        let service = try ServiceKey(namespace: "default", name: "web")
        let http = try ServicePort(name: "http", port: 80)
        let grpc = try ServicePort(name: "grpc", port: 9090, appProtocol: "grpc")
        let endpoint = try Endpoint(address: "10.0.0.1", targetPorts: [8080])
        // a duplicate address, a port mapping that does not fit, duplicate port names
        #expect(throws: ModelError.self) {
            try EndpointSet(source: source, service: service, ports: [http], endpoints: [endpoint, endpoint])
        }
        #expect(throws: ModelError.self) {
            try EndpointSet(source: source, service: service, ports: [http, grpc], endpoints: [endpoint])
        }
        #expect(throws: ModelError.self) {
            try EndpointSet(source: source, service: service, ports: [http, http], endpoints: [])
        }
        #expect(grpc.isHTTP2 && !http.isHTTP2)
        let empty = try EndpointSet.empty(source: source, service: service, ports: [http])
        #expect(empty.endpoints.isEmpty)
    }

    @Test func recordsRoundTripAndAreCheckedAgainstWhereTheyAreStored() throws {
        let set = Fixtures.endpointSet("web", count: 10)
        let bytes: [UInt8] = try set.record(epoch: 7, publishedAtUnixMilliseconds: 1_700_000_000_000).serializedBytes()
        #expect(try EndpointSet(recordBytes: bytes, expectedSource: set.source, expectedService: set.service) == set)
        #expect(throws: ModelError.self) {
            try EndpointSet(recordBytes: bytes, expectedSource: try SourceCluster("other"), expectedService: set.service)
        }
        #expect(throws: ModelError.self) {
            try EndpointSet(recordBytes: bytes, expectedSource: set.source, expectedService: Fixtures.service("api"))
        }
        var bigPort = set.record(epoch: 1, publishedAtUnixMilliseconds: 0)
        bigPort.endpoints[0].targetPorts = [70_000]
        #expect(throws: ModelError.self) {
            try EndpointSet(recordBytes: try bigPort.serializedBytes(), expectedSource: set.source)
        }
    }
}

/// The decoder's canonical-form and forward-compatibility rules.
@Suite struct RecordDecodingTests {
    let set = Fixtures.endpointSet("web", count: 4)

    private func sealed(_ record: Legation_Store_V1_EndpointSetRecord) throws -> [UInt8] {
        var content = Legation_Store_V1_EndpointSetRecord()
        content.ports = record.ports
        content.endpoints = record.endpoints
        var sealed = record
        sealed.contentHash = EndpointSet.hash(content: content)
        return try sealed.serializedBytes()
    }

    @Test func recordsNotInCanonicalFormAreRefusedEvenWithAMatchingHash() throws {
        var unsorted = set.record(epoch: 1, publishedAtUnixMilliseconds: 0)
        unsorted.endpoints.reverse()
        #expect(throws: ModelError.self) { try EndpointSet(recordBytes: try sealed(unsorted), expectedSource: set.source) }

        let v6 = try EndpointSet(
            source: set.source, service: set.service, ports: set.ports,
            endpoints: [try Endpoint(address: "fd00::1", targetPorts: [8080])])
        var longhand = v6.record(epoch: 1, publishedAtUnixMilliseconds: 0)
        #expect(try EndpointSet(recordBytes: try sealed(longhand), expectedSource: set.source) == v6)
        longhand.endpoints[0].address = "fd00:0:0::1"  // the same address, not in canonical form
        do {
            _ = try EndpointSet(recordBytes: try sealed(longhand), expectedSource: set.source)
            Issue.record("a non-canonical address was accepted")
        } catch {
            #expect("\(error)".contains("canonical"))
        }

        var duplicate = set.record(epoch: 1, publishedAtUnixMilliseconds: 0)
        duplicate.endpoints[1] = duplicate.endpoints[0]
        #expect(throws: ModelError.self) { try EndpointSet(recordBytes: try sealed(duplicate), expectedSource: set.source) }
    }

    /// A newer writer may add fields; an older reader keeps them in the hashed content and accepts it.
    @Test func unknownFieldsOfANewerWriterAreHashedAsReceived() throws {
        var record = set.record(epoch: 1, publishedAtUnixMilliseconds: 0)
        var endpointBytes: [UInt8] = try record.endpoints[0].serializedBytes()
        endpointBytes += [0x90, 0x03, 0x07]  // field 50, varint 7: unknown to this build
        record.endpoints[0] = try Legation_Store_V1_Endpoint(serializedBytes: endpointBytes)
        let decoded = try EndpointSet(recordBytes: try sealed(record), expectedSource: set.source)
        #expect(decoded.endpoints == set.endpoints)
        #expect(decoded.contentHash != set.contentHash, "the extra field is part of the content")
    }

    /// The content hash is checked over the record's bytes when ports and endpoints lie there as one
    /// run, as writers lay them out; otherwise over the content encoded again. Either way a changed byte
    /// of content is refused, and fields in another order are accepted.
    @Test func theContentHashIsCheckedOverTheBytesOrOverTheContentEncodedAgain() throws {
        let bytes = set.recordBytes(epoch: 3, publishedAtUnixMilliseconds: 4)
        #expect(EndpointSet.contentHash(ofRecordBytes: bytes) == set.contentHash, "the bytes as written")

        // The last endpoint's last byte (its `terminating` flag's value, or a string's last character) changed.
        var record = set.record(epoch: 3, publishedAtUnixMilliseconds: 4)
        let content = EndpointSet.contentBytes(ports: set.ports, endpoints: set.endpoints)
        let start = try #require(bytes.firstRange(of: content)).lowerBound
        var damaged = bytes
        damaged[start + content.count - 1] ^= 0x01
        #expect(throws: ModelError.self) { try EndpointSet(recordBytes: damaged, expectedSource: set.source) }

        // Protobuf allows any field order: an endpoint, then the ports, then the other endpoints.
        let (ports, endpoints) = (record.ports, record.endpoints)
        (record.ports, record.endpoints) = ([], [])
        let head: [UInt8] = try record.serializedBytes()
        var shuffled = head
        for (index, endpoint) in endpoints.enumerated() {
            WireFormat.appendLengthDelimited(7, try endpoint.serializedBytes() as [UInt8], to: &shuffled)
            if index == 0 {
                for port in ports { WireFormat.appendLengthDelimited(6, try port.serializedBytes() as [UInt8], to: &shuffled) }
            }
        }
        #expect(EndpointSet.contentHash(ofRecordBytes: shuffled) == nil, "not one run: encoded again")
        #expect(try EndpointSet(recordBytes: shuffled, expectedSource: set.source) == set)
    }
}

/// The hand-assembled encodings must equal SwiftProtobuf's, byte for byte (the hash and every reader
/// depend on it).
@Suite struct WireFormatTests {
    @Test(arguments: [0, 1, 3, 200])
    func recordBytesEqualSwiftProtobufsEncoding(_ count: Int) throws {
        let set = Fixtures.endpointSet("web", count: count, conditions: .init(ready: false, serving: true, terminating: true))
        for (epoch, published) in [(UInt64(0), Int64(0)), (1_795_546_802_362, 1_700_000_000_123), (UInt64.max, Int64(-1))] {
            let expected: [UInt8] = try set.record(epoch: epoch, publishedAtUnixMilliseconds: published).serializedBytes()
            #expect(set.recordBytes(epoch: epoch, publishedAtUnixMilliseconds: published) == expected)
        }
        var content = Legation_Store_V1_EndpointSetRecord()
        content.ports = set.ports.map(\.record)
        content.endpoints = set.endpoints.map(\.record)
        #expect(set.contentHash == EndpointSet.hash(content: content))

        // A decoded set (whose endpoints carry no cached encoding) encodes and compares the same.
        let bytes = set.recordBytes(epoch: 5, publishedAtUnixMilliseconds: 9)
        let decoded = try EndpointSet(recordBytes: bytes, expectedSource: set.source)
        #expect(decoded == set)
        #expect(decoded.recordBytes(epoch: 5, publishedAtUnixMilliseconds: 9) == bytes)
    }

    /// The pointer writer writes what the array appenders write, varints at every length boundary and
    /// strings empty, ASCII and not.
    @Test func theWireWriterWritesWhatTheAppendersWrite() {
        let values: [UInt64] = [0, 1, 127, 128, 16_383, 16_384, 1 << 21, 1 << 28, 1 << 35, 1 << 56, UInt64.max]
        let texts = ["", "a", "10.0.0.1", "zone-ä", String(repeating: "x", count: 300)]
        var expected: [UInt8] = []
        for value in values {
            WireFormat.appendVarint(value, to: &expected)
            WireFormat.appendVarint(3 << 3, to: &expected)
            WireFormat.appendVarint(value, to: &expected)
            WireFormat.appendField(5, length: Int(value % 100_000), to: &expected)
        }
        for text in texts {
            WireFormat.appendString(2, text, to: &expected)
            WireFormat.appendLengthDelimited(1, text.utf8, to: &expected)
        }
        var written = [UInt8](repeating: 0, count: expected.count)
        written.withUnsafeMutableBufferPointer { buffer in
            var writer = WireWriter(buffer.baseAddress!)
            for value in values {
                writer.varint(value)
                writer.varintField(3, value)
                writer.field(5, length: Int(value % 100_000))
                #expect(WireFormat.varintSize(value) >= 1)
            }
            for text in texts {
                writer.string(2, text)
                writer.lengthDelimited(1, text)
            }
            #expect(writer.cursor == buffer.baseAddress! + buffer.count, "as many bytes as the appenders")
        }
        #expect(written == expected)
        for value in values {
            var one: [UInt8] = []
            WireFormat.appendVarint(value, to: &one)
            #expect(WireFormat.varintSize(value) == one.count)
        }
    }

    @Test func endpointBytesEqualSwiftProtobufsEncoding() throws {
        var generator = SystemRandomNumberGenerator()
        let words = ["", "a", "zone-1", "node-17.example", String(repeating: "h", count: 200)]
        let portChoices: [[UInt16]] = [[], [0], [80], [127, 128, 16_383, 16_384, 65_535], [0, 8080, 0]]
        for index in 0..<500 {
            let address = index % 2 == 0 ? "10.\(index % 256).0.\(index % 200)" : "fd00::\(String(index, radix: 16))"
            let bits = UInt8.random(in: 0...7, using: &generator)
            let endpoint = try Endpoint(
                address: address, targetPorts: portChoices.randomElement(using: &generator)!,
                zone: words.randomElement(using: &generator)!, node: words.randomElement(using: &generator)!,
                hostname: words.randomElement(using: &generator)!, targetPod: words.randomElement(using: &generator)!,
                conditions: .init(ready: bits & 1 != 0, serving: bits & 2 != 0, terminating: bits & 4 != 0))
            let expected: [UInt8] = try endpoint.record.serializedBytes()
            #expect(endpoint.wire == expected, "\(endpoint.address) \(endpoint.targetPorts) \(endpoint.conditions)")
        }
    }
}
