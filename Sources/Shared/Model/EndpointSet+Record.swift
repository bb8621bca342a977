import SwiftProtobuf

// WARNING - STABLE API: the mapping between the model and Legation's Redis records
// (Protos/legation/store/v1/records.proto, docs/redis-schema.md). Readers of every version decode it.

/// The record schema version this build writes, and the newest it reads.
public let currentSchemaVersion: Legation_Store_V1_SchemaVersion = .schemaVersion1

extension EndpointSet {
    /// The largest record the decoder accepts (bytes); larger ones are rejected before parsing.
    public static let maximumRecordBytes = 64 << 20

    /// The record stored in Redis for this set.
    public func record(epoch: UInt64, publishedAtUnixMilliseconds: Int64) -> Legation_Store_V1_EndpointSetRecord {
        var record = Legation_Store_V1_EndpointSetRecord()
        record.schemaVersion = currentSchemaVersion
        record.sourceCluster = source.name
        record.namespace = service.namespace
        record.name = service.name
        record.contentHash = contentHash
        record.ports = ports.map(\.record)
        record.endpoints = endpoints.map(\.record)
        record.publishedAtUnixMs = publishedAtUnixMilliseconds
        record.epoch = epoch
        record.failover = failover?.description ?? ""
        return record
    }

    /// Decodes and validates a stored record. The decoder is one of the two ways to build a set.
    ///
    /// - Throws: `ModelError.badRecord` for bytes that are not a record, a record of an unknown schema
    ///   version, a record of another source or service than `expected...`, or one whose content hash
    ///   does not match its content; other `ModelError`s for content that breaks the model's invariants.
    public init(recordBytes bytes: [UInt8], expectedSource: SourceCluster, expectedService: ServiceKey? = nil)
        throws(ModelError)
    {
        self = try Self.decode(recordBytes: bytes, expectedSource: expectedSource, expectedService: expectedService).set
    }

    /// Decodes and validates a stored record, as `init(recordBytes:...)`, also returning when the writer
    /// published it (for the reader's lag metric) and why its failover policy was ignored, if it was:
    /// a policy readers cannot use (a newer writer's criterion, or damage) is dropped, not the record,
    /// and the service gets the server's default order.
    public static func decode(recordBytes bytes: [UInt8], expectedSource: SourceCluster, expectedService: ServiceKey? = nil)
        throws(ModelError) -> (set: EndpointSet, publishedAtUnixMilliseconds: Int64, ignoredFailover: ModelError?)
    {
        guard bytes.count <= Self.maximumRecordBytes else {
            throw ModelError(.tooLarge, "record of \(bytes.count) bytes exceeds \(Self.maximumRecordBytes)")
        }
        let record: Legation_Store_V1_EndpointSetRecord
        do {
            record = try Legation_Store_V1_EndpointSetRecord(serializedBytes: bytes)
        } catch {
            throw ModelError(.badRecord, "not an EndpointSetRecord (\(bytes.count) bytes): \(error)")
        }
        let set = try EndpointSet(
            record: record, expectedSource: expectedSource, expectedService: expectedService,
            contentHashOfBytes: contentHash(ofRecordBytes: bytes))
        return (set, record.publishedAtUnixMs, Self.failover(of: record).ignored)
    }

    /// The content hash of a record's ports and endpoints as they lie in its bytes, when they are one
    /// run of fields 6 then 7 (as every writer lays them out); nil otherwise, and the content is then
    /// re-encoded to be hashed. Hashing the bytes as received spares a cold start's reader encoding
    /// every endpoint it has just decoded.
    static func contentHash(ofRecordBytes bytes: [UInt8]) -> UInt64? {
        bytes.withUnsafeBytes { raw -> UInt64? in
            var offset = 0
            var run: Range<Int>?
            var last = 0
            while offset < raw.count {
                guard let field = WireFormat.field(in: raw, at: offset) else { return nil }
                if field.number == 6 || field.number == 7 {
                    guard field.number >= last else { return nil }  // a port after an endpoint
                    if let current = run {
                        guard current.upperBound == offset else { return nil }  // not one run
                        run = current.lowerBound..<field.end
                    } else {
                        run = offset..<field.end
                    }
                    last = field.number
                }
                offset = field.end
            }
            return hash(contentBytes: UnsafeRawBufferPointer(rebasing: raw[run ?? 0..<0]))
        }
    }

    /// The record's failover policy: nil when it carries none or one that does not parse (then also why).
    static func failover(of record: Legation_Store_V1_EndpointSetRecord) -> (policy: FailoverPolicy?, ignored: ModelError?) {
        guard !record.failover.isEmpty else { return (nil, nil) }
        do {
            return (try FailoverPolicy(parsing: record.failover), nil)
        } catch {
            return (nil, ModelError(error.code, "failover policy ignored: \(error.message)"))
        }
    }

    /// Validates a decoded record; see `init(recordBytes:expectedSource:expectedService:)`. A failover
    /// policy that does not parse is dropped (`decode` says why).
    public init(record: Legation_Store_V1_EndpointSetRecord, expectedSource: SourceCluster, expectedService: ServiceKey?)
        throws(ModelError)
    {
        try self.init(record: record, expectedSource: expectedSource, expectedService: expectedService, contentHashOfBytes: nil)
    }

    /// `contentHashOfBytes`: the hash of the content as it lay in the record's bytes, if known; when it
    /// is the record's `content_hash`, the content is not encoded again to be checked.
    init(
        record: Legation_Store_V1_EndpointSetRecord, expectedSource: SourceCluster, expectedService: ServiceKey?,
        contentHashOfBytes: UInt64?
    ) throws(ModelError) {
        guard record.schemaVersion == currentSchemaVersion else {
            throw ModelError(
                .unsupportedSchema, "record schema version \(record.schemaVersion.rawValue) is not \(currentSchemaVersion.rawValue)")
        }
        guard record.sourceCluster == expectedSource.name else {
            throw ModelError(
                .badRecord, "record of source \(String(reflecting: record.sourceCluster.prefix(80))) stored under \(expectedSource)")
        }
        let service = try ServiceKey(namespace: record.namespace, name: record.name)
        if let expectedService, expectedService != service {
            throw ModelError(.badRecord, "record of \(service) stored under \(expectedService)")
        }
        guard record.endpoints.count <= Self.maximumEndpoints, record.ports.count <= Self.maximumPorts else {
            throw ModelError(.tooLarge, "record of \(service) has \(record.endpoints.count) endpoints and \(record.ports.count) ports")
        }
        // The hash is checked over the content as received (unknown fields of newer writers included),
        // without re-encoding the model; the model must then be exactly that content (canonical form).
        var hash = record.contentHash
        if contentHashOfBytes != record.contentHash {
            var content = Legation_Store_V1_EndpointSetRecord()
            content.ports = record.ports
            content.endpoints = record.endpoints
            hash = EndpointSet.hash(content: content)
        }
        guard hash == record.contentHash else {
            throw ModelError(
                .badRecord,
                "record of \(service) says content hash \(String(record.contentHash, radix: 16)) but its content hashes to \(String(hash, radix: 16))"
            )
        }
        let ports = try record.ports.map { (port) throws(ModelError) in try ServicePort(record: port) }
        var endpoints: [Endpoint] = []
        endpoints.reserveCapacity(record.endpoints.count)
        for stored in record.endpoints {
            let endpoint = try Endpoint(record: stored)
            guard endpoint.address == stored.address else {
                throw ModelError(.badRecord, "record of \(service) holds address \(stored.address.prefix(64)), not in canonical form")
            }
            endpoints.append(endpoint)
        }
        try self.init(
            source: expectedSource, service: service, ports: ports, endpoints: endpoints, knownHash: hash,
            failover: Self.failover(of: record).policy)
    }
}

extension ServicePort {
    var record: Legation_Store_V1_ServicePort {
        var record = Legation_Store_V1_ServicePort()
        record.name = name
        record.port = UInt32(port)
        record.protocol =
            switch transportProtocol {
            case .tcp: .tcp
            case .udp: .udp
            case .sctp: .sctp
            }
        record.appProtocol = appProtocol
        return record
    }

    init(record: Legation_Store_V1_ServicePort) throws(ModelError) {
        guard let number = UInt16(exactly: record.port) else {
            throw ModelError(.invalidPort, "port \(record.name) has number \(record.port)")
        }
        let transport: TransportProtocol =
            switch record.protocol {
            case .tcp: .tcp
            case .udp: .udp
            case .sctp: .sctp
            case .UNRECOGNIZED(let value): throw ModelError(.invalidPort, "port \(record.name) has unknown protocol \(value)")
            }
        try self.init(name: record.name, port: number, transportProtocol: transport, appProtocol: record.appProtocol)
    }
}

extension Endpoint {
    var record: Legation_Store_V1_Endpoint {
        Self.record(
            address: address, targetPorts: targetPorts, zone: zone, node: node, hostname: hostname, targetPod: targetPod,
            conditions: conditions)
    }

    static func record(
        address: String, targetPorts: [UInt16], zone: String, node: String, hostname: String, targetPod: String, conditions: Conditions
    ) -> Legation_Store_V1_Endpoint {
        var record = Legation_Store_V1_Endpoint()
        record.address = address
        record.targetPorts = targetPorts.map(UInt32.init)
        record.zone = zone
        record.node = node
        record.hostname = hostname
        record.targetPod = targetPod
        record.ready = conditions.ready
        record.serving = conditions.serving
        record.terminating = conditions.terminating
        return record
    }

    init(record: Legation_Store_V1_Endpoint) throws(ModelError) {
        var ports: [UInt16] = []
        ports.reserveCapacity(record.targetPorts.count)
        for port in record.targetPorts {
            guard let number = UInt16(exactly: port) else {
                throw ModelError(.invalidPort, "endpoint \(record.address.prefix(64)) maps target port \(port)")
            }
            ports.append(number)
        }
        try self.init(
            address: record.address, targetPorts: ports, zone: record.zone, node: record.node,
            hostname: record.hostname, targetPod: record.targetPod,
            conditions: Conditions(ready: record.ready, serving: record.serving, terminating: record.terminating),
            encode: false)
    }
}
