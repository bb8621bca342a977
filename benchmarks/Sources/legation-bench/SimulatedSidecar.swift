import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Server
import Synchronization

/// Reads only what a load generator needs from an encoded response, without decoding the resources:
/// the top-level fields, and a resource's name (field 1 of Cluster and ClusterLoadAssignment alike).
enum MiniProtobuf {
    /// (field number, wire type, value bytes or varint) for each top-level field.
    static func fields(_ bytes: ArraySlice<UInt8>) -> [(number: Int, value: ArraySlice<UInt8>)] {
        var fields: [(Int, ArraySlice<UInt8>)] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            guard let tag = varint(bytes, &index) else { break }
            let number = Int(tag >> 3)
            switch tag & 7 {
            case 0: _ = varint(bytes, &index)
            case 1: index += 8
            case 5: index += 4
            case 2:
                guard let length = varint(bytes, &index), index + Int(length) <= bytes.endIndex else { return fields }
                fields.append((number, bytes[index..<(index + Int(length))]))
                index += Int(length)
            default: return fields
            }
        }
        return fields
    }

    static func varint(_ bytes: ArraySlice<UInt8>, _ index: inout Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.endIndex, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    /// The `name` of the resource inside an `Any` (type_url 1, value 2).
    static func nameInAny(_ any: ArraySlice<UInt8>) -> String? {
        guard let value = fields(any).first(where: { $0.number == 2 })?.value else { return nil }
        return fields(value).first(where: { $0.number == 1 }).map { string($0.value) }
    }
}

/// Hands the response bytes over undecoded.
struct RawDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ bytes: Bytes) throws -> [UInt8] {
        bytes.withUnsafeBytes { Array($0) }
    }
}

/// One simulated Envoy: its own HTTP/2 connection, one ADS stream (state of the world or delta),
/// wildcard CDS, EDS for every cluster received, ACKs with version and nonce. It records when each
/// load assignment arrived, and the bytes it received.
final class SimulatedSidecar: Sendable {
    struct State: Sendable {
        var clusters: Set<String> = []
        var assignments: [String: ContinuousClock.Instant] = [:]
        /// Every arrival of each assignment, for update latency.
        var arrivals: [(name: String, at: ContinuousClock.Instant)] = []
        var bytes = 0
        var responses = 0
        var error: String?
    }

    let id: Int
    let delta: Bool
    let state = Mutex(State())

    init(id: Int, delta: Bool) {
        self.id = id
        self.delta = delta
    }

    var syncedClusters: Int { state.withLock { $0.assignments.count } }

    /// Connects and follows the stream until cancelled.
    func run(host: String, port: Int, zone: String) async {
        do {
            try await withGRPCClient(transport: .http2NIOPosix(target: .ipv4(address: host, port: port), transportSecurity: .plaintext)) { client in
                let (requests, sink) = AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.makeStream()
                let (deltaRequests, deltaSink) = AsyncStream<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>.makeStream()
                var node = Envoy_Config_Core_V3_Node()
                node.id = "bench-sidecar-\(id)"
                node.cluster = "bench"
                node.locality.zone = zone
                if delta {
                    try await runDelta(client, node: node, requests: deltaRequests, sink: deltaSink)
                } else {
                    try await runSotW(client, node: node, requests: requests, sink: sink)
                }
            }
        } catch is CancellationError {
        } catch {
            state.withLock { $0.error = "\(error)" }
        }
    }

    private func runSotW(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, node: Envoy_Config_Core_V3_Node,
        requests: AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>, sink: AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.Continuation
    ) async throws {
        var first = Envoy_Service_Discovery_V3_DiscoveryRequest()
        first.node = node
        first.typeURL = ResourceType.cluster.typeURL
        sink.yield(first)
        try await client.bidirectionalStreaming(
            request: StreamingClientRequest(of: Envoy_Service_Discovery_V3_DiscoveryRequest.self) { writer in
                for await request in requests { try await writer.write(request) }
            },
            descriptor: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method.StreamAggregatedResources.descriptor,
            serializer: ProtobufSerializer<Envoy_Service_Discovery_V3_DiscoveryRequest>(),
            deserializer: RawDeserializer(),
            options: .defaults
        ) { response in
            var subscribed: [String] = []
            for try await bytes in response.messages {
                let now = ContinuousClock.now
                var version = "", nonce = "", typeURL = ""
                var names: [String] = []
                for field in MiniProtobuf.fields(bytes[...]) {
                    switch field.number {
                    case 1: version = MiniProtobuf.string(field.value)
                    case 2: if let name = MiniProtobuf.nameInAny(field.value) { names.append(name) }
                    case 4: typeURL = MiniProtobuf.string(field.value)
                    case 5: nonce = MiniProtobuf.string(field.value)
                    default: break
                    }
                }
                var ack = Envoy_Service_Discovery_V3_DiscoveryRequest()
                ack.typeURL = typeURL
                ack.versionInfo = version
                ack.responseNonce = nonce
                if typeURL == ResourceType.cluster.typeURL {
                    let clusters = names.sorted()
                    self.state.withLock {
                        $0.clusters = Set(clusters)
                        $0.bytes += bytes.count
                        $0.responses += 1
                    }
                    sink.yield(ack)
                    if clusters != subscribed {
                        subscribed = clusters
                        var eds = Envoy_Service_Discovery_V3_DiscoveryRequest()
                        eds.typeURL = ResourceType.endpoint.typeURL
                        eds.resourceNames = clusters
                        sink.yield(eds)
                    }
                } else {
                    self.record(names, at: now, bytes: bytes.count)
                    ack.resourceNames = subscribed
                    sink.yield(ack)
                }
            }
        }
    }

    private func runDelta(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, node: Envoy_Config_Core_V3_Node,
        requests: AsyncStream<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>,
        sink: AsyncStream<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>.Continuation
    ) async throws {
        var first = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        first.node = node
        first.typeURL = ResourceType.cluster.typeURL
        first.resourceNamesSubscribe = ["*"]
        sink.yield(first)
        try await client.bidirectionalStreaming(
            request: StreamingClientRequest(of: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest.self) { writer in
                for await request in requests { try await writer.write(request) }
            },
            descriptor: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method.DeltaAggregatedResources.descriptor,
            serializer: ProtobufSerializer<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>(),
            deserializer: RawDeserializer(),
            options: .defaults
        ) { response in
            var subscribed = Set<String>()
            for try await bytes in response.messages {
                let now = ContinuousClock.now
                var nonce = "", typeURL = ""
                var names: [String] = []
                var removed: [String] = []
                for field in MiniProtobuf.fields(bytes[...]) {
                    switch field.number {
                    case 2:
                        // Resource: name is field 3.
                        if let name = MiniProtobuf.fields(field.value).first(where: { $0.number == 3 }) { names.append(MiniProtobuf.string(name.value)) }
                    case 4: typeURL = MiniProtobuf.string(field.value)
                    case 5: nonce = MiniProtobuf.string(field.value)
                    case 6: removed.append(MiniProtobuf.string(field.value))
                    default: break
                    }
                }
                var ack = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
                ack.typeURL = typeURL
                ack.responseNonce = nonce
                if typeURL == ResourceType.cluster.typeURL {
                    let clusters = self.state.withLock { state -> Set<String> in
                        state.clusters.formUnion(names)
                        state.clusters.subtract(removed)
                        state.bytes += bytes.count
                        state.responses += 1
                        return state.clusters
                    }
                    sink.yield(ack)
                    let new = clusters.subtracting(subscribed)
                    let gone = subscribed.subtracting(clusters)
                    if !new.isEmpty || !gone.isEmpty {
                        subscribed = clusters
                        var eds = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
                        eds.typeURL = ResourceType.endpoint.typeURL
                        eds.resourceNamesSubscribe = new.sorted()
                        eds.resourceNamesUnsubscribe = gone.sorted()
                        sink.yield(eds)
                    }
                } else {
                    self.record(names, at: now, bytes: bytes.count)
                    sink.yield(ack)
                }
            }
        }
    }

    private func record(_ names: [String], at now: ContinuousClock.Instant, bytes: Int) {
        state.withLock { state in
            state.bytes += bytes
            state.responses += 1
            for name in names {
                if state.assignments[name] == nil { state.assignments[name] = now }
                state.arrivals.append((name, now))
            }
        }
    }
}
