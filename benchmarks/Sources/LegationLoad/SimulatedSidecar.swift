import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Server
import Synchronization

/// Reads only what a load generator needs from an encoded response, without decoding the resources:
/// the top-level fields, and a resource's name (field 1 of Cluster and ClusterLoadAssignment alike).
public enum MiniProtobuf {
    /// (field number, value bytes) for each length-delimited top-level field; varints and fixed fields are skipped.
    public static func fields(_ bytes: ArraySlice<UInt8>) -> [(number: Int, value: ArraySlice<UInt8>)] {
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

    /// The length-delimited (or skipped) field that starts at `start`, if all of it is in `bytes`:
    /// its number, its value's range and where it ends.
    static func nextField(_ bytes: [UInt8], from start: Int) -> (number: Int, value: Range<Int>, end: Int)? {
        let slice = bytes[...]
        var index = start
        guard index < bytes.count, let tag = varint(slice, &index) else { return nil }
        switch tag & 7 {
        case 0: return varint(slice, &index).map { _ in (Int(tag >> 3), index..<index, index) }
        case 1: return index + 8 <= bytes.count ? (Int(tag >> 3), index..<index, index + 8) : nil
        case 5: return index + 4 <= bytes.count ? (Int(tag >> 3), index..<index, index + 4) : nil
        case 2:
            guard let length = varint(slice, &index), index + Int(length) <= bytes.count else { return nil }
            return (Int(tag >> 3), index..<(index + Int(length)), index + Int(length))
        default: return nil
        }
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

    /// The `value` of an `Any` (type_url 1, value 2).
    static func valueOfAny(_ any: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        fields(any).first(where: { $0.number == 2 })?.value
    }

    /// The `name` of the resource inside an `Any`.
    static func nameInAny(_ any: ArraySlice<UInt8>) -> String? {
        guard let value = valueOfAny(any) else { return nil }
        return fields(value).first(where: { $0.number == 1 }).map { string($0.value) }
    }
}

/// What a simulated sidecar reads of a response, field by field: so a response can be read as its
/// frames arrive, keeping each resource only as long as it takes to read its name (and its bytes only
/// when the sidecar tracks content).
public struct ResponseSummary: Sendable {
    let delta: Bool
    let keepValues: Bool
    var version = "", nonce = "", typeURL = ""
    var resources: [(name: String, value: ArraySlice<UInt8>)] = []
    var versions: [(String, String)] = []
    var removed: [String] = []
    var bytes = 0

    init(delta: Bool, keepValues: Bool) {
        self.delta = delta
        self.keepValues = keepValues
    }

    /// A whole response's summary.
    init(reading bytes: [UInt8], delta: Bool, keepValues: Bool) {
        self.init(delta: delta, keepValues: keepValues)
        for field in MiniProtobuf.fields(bytes[...]) { add(field.number, field.value) }
        self.bytes = bytes.count
    }

    /// One top-level field of a `DiscoveryResponse` (version 1, resources 2, type_url 4, nonce 5) or a
    /// `DeltaDiscoveryResponse` (resources 2 as `Resource {version 1, resource 2, name 3}`, type_url 4,
    /// nonce 5, removed_resources 6).
    mutating func add(_ number: Int, _ value: ArraySlice<UInt8>) {
        switch (number, delta) {
        case (1, false): version = MiniProtobuf.string(value)
        case (2, false):
            if let any = MiniProtobuf.valueOfAny(value), let name = MiniProtobuf.fields(any).first(where: { $0.number == 1 }) {
                resources.append((MiniProtobuf.string(name.value), keepValues ? any : []))
            }
        case (2, true):
            let parts = MiniProtobuf.fields(value)
            guard let name = parts.first(where: { $0.number == 3 }).map({ MiniProtobuf.string($0.value) }) else { return }
            let any = keepValues ? parts.first(where: { $0.number == 2 }).flatMap { MiniProtobuf.valueOfAny($0.value) } ?? [] : []
            resources.append((name, any))
            versions.append((name, parts.first(where: { $0.number == 1 }).map { MiniProtobuf.string($0.value) } ?? ""))
        case (4, _): typeURL = MiniProtobuf.string(value)
        case (5, _): nonce = MiniProtobuf.string(value)
        case (6, true): removed.append(MiniProtobuf.string(value))
        default: break
        }
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
/// load assignment arrived, and the bytes it received. Like Envoy it reconnects when the stream ends
/// (to the next of its xds-servers), saying what it holds: SotW `version_info`, delta
/// `initial_resource_versions`.
///
/// With `trackContent` (fault tests, small N) it also decodes each assignment and keeps the endpoints
/// it holds, so a test can count every endpoint change and removal pushed and compare with the truth.
public final class SimulatedSidecar: Sendable {
    public struct State: Sendable {
        public var clusters: Set<String> = []
        public var assignments: [String: ContinuousClock.Instant] = [:]
        /// Every arrival of each assignment, for update latency.
        public var arrivals: [(name: String, at: ContinuousClock.Instant)] = []
        /// The latest arrival of each assignment, and of any: what the fan-out harness polls.
        public var latestArrival: [String: ContinuousClock.Instant] = [:]
        public var latestAnyArrival: ContinuousClock.Instant?
        public var bytes = 0
        public var responses = 0
        public var error: String?

        /// Streams opened (1 + reconnects), the server port of the open one, and when it opened.
        public var connects = 0
        public var connectedPort: Int?
        public var connectedAt: ContinuousClock.Instant?
        /// With `trackContent`: the endpoints ("address:port") held per assignment.
        public var endpoints: [String: Set<String>] = [:]
        /// With `trackContent`: each change to what was held, after an assignment's first arrival.
        public var changes: [Change] = []
        /// Assignments re-sent with exactly the bytes held (needless), and clusters removed by the server.
        public var resends = 0
        public var clustersRemoved = 0
        /// EDS responses received, and how many were refused (NACKed) by injection.
        public var endpointResponses = 0
        public var nacks = 0

        var sotwVersions: [String: String] = [:]
        var deltaVersions: [String: [String: String]] = [:]
        var heldBytes: [String: [UInt8]] = [:]
    }

    public struct Change: Sendable {
        public var assignment: String
        public var at: ContinuousClock.Instant
        public var added: Int
        public var removed: Int
    }

    public let id: Int
    public let delta: Bool
    public let trackContent: Bool
    /// Refuse (NACK) every n-th EDS response, as Envoy does with a configuration it rejects; 0 never.
    public let nackEvery: Int
    public let state = Mutex(State())

    public init(id: Int, delta: Bool, trackContent: Bool = false, nackEvery: Int = 0) {
        self.nackEvery = nackEvery
        self.id = id
        self.delta = delta
        self.trackContent = trackContent
    }

    /// Envoy reads xDS responses of any size; grpc-swift's default limit (4 MiB) would refuse the EDS
    /// answer of a large mesh (1,000 assignments of 50 endpoints) and loop reconnecting.
    static let callOptions: CallOptions = {
        var options = CallOptions.defaults
        options.maxRequestMessageBytes = 512 << 20
        options.maxResponseMessageBytes = 512 << 20
        return options
    }()

    public var syncedClusters: Int { state.withLock { $0.assignments.count } }

    /// Connects and follows the stream until cancelled; with `reconnect`, a stream that ends is opened
    /// again on the next server after a short jittered pause (by default 50–250 ms, as Envoy's backoff starts).
    public func run(
        servers: [(host: String, port: Int)], zone: String, reconnect: Bool = false, retryPause: ClosedRange<Int> = 50...250, client: Client = .grpcSwift
    ) async {
        var index = id % servers.count
        var node = Envoy_Config_Core_V3_Node()
        node.id = "bench-sidecar-\(id)"
        node.cluster = "bench"
        node.locality.zone = zone
        repeat {
            let (host, port) = servers[index]
            do {
                switch client {
                case .grpcSwift:
                    try await withGRPCClient(transport: .http2NIOPosix(target: .ipv4(address: host, port: port), transportSecurity: .plaintext)) { client in
                        if delta {
                            try await runDelta(client, node: node, port: port)
                        } else {
                            try await runSotW(client, node: node, port: port)
                        }
                    }
                case .nio:
                    try await runWire(host: host, port: port, node: node)
                }
            } catch is CancellationError {
                return
            } catch {
                state.withLock { $0.error = "\(error)" }
            }
            state.withLock { $0.connectedPort = nil }
            index = (index + 1) % servers.count
            if reconnect { try? await Task.sleep(for: .milliseconds(Int.random(in: retryPause))) }
        } while reconnect && !Task.isCancelled
    }

    /// Connects to one server and follows the stream until it ends or the task is cancelled.
    public func run(host: String, port: Int, zone: String) async {
        await run(servers: [(host, port)], zone: zone)
    }

    private func opened(port: Int) {
        state.withLock {
            $0.connects += 1
            $0.connectedPort = port
            $0.connectedAt = .now
        }
    }

    /// What carries a sidecar's stream.
    public enum Client: String, Sendable, CaseIterable {
        /// gRPC over SwiftNIO's HTTP/2 directly, the stream's logic on its event loop: the harness's own
        /// cost stays well below the server's.
        case nio
        /// grpc-swift-2's client.
        case grpcSwift = "grpc-swift"
    }

    private func runWire(host: String, port: Int, node: Envoy_Config_Core_V3_Node) async throws {
        let opened: @Sendable () -> Void = { self.opened(port: port) }
        let (delta, keepValues) = (self.delta, trackContent)
        let summary: @Sendable () -> ResponseSummary = { ResponseSummary(delta: delta, keepValues: keepValues) }
        if delta {
            let session = DeltaSession(self, node: node)
            try await WireSidecarStream.run(
                host: host, port: port, path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources",
                start: session.start().compactMap { try? $0.serializedBytes() }, summary: summary,
                handle: { response in session.handle(response, at: .now).compactMap { try? $0.serializedBytes() } }, opened: opened)
        } else {
            let session = SotWSession(self, node: node)
            try await WireSidecarStream.run(
                host: host, port: port, path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
                start: session.start().compactMap { try? $0.serializedBytes() }, summary: summary,
                handle: { response in session.handle(response, at: .now).compactMap { try? $0.serializedBytes() } }, opened: opened)
        }
    }

    private func runSotW(_ client: GRPCClient<HTTP2ClientTransport.Posix>, node: Envoy_Config_Core_V3_Node, port: Int) async throws {
        let session = SotWSession(self, node: node)
        let (requests, sink) = AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.makeStream()
        for request in session.start() { sink.yield(request) }
        try await client.bidirectionalStreaming(
            request: StreamingClientRequest(of: Envoy_Service_Discovery_V3_DiscoveryRequest.self) { writer in
                for await request in requests { try await writer.write(request) }
            },
            descriptor: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method.StreamAggregatedResources.descriptor,
            serializer: ProtobufSerializer<Envoy_Service_Discovery_V3_DiscoveryRequest>(),
            deserializer: RawDeserializer(),
            options: Self.callOptions
        ) { response in
            defer { sink.finish() }
            self.opened(port: port)
            for try await bytes in response.messages {
                for request in session.handle(bytes, at: .now) { sink.yield(request) }
            }
        }
    }

    private func runDelta(_ client: GRPCClient<HTTP2ClientTransport.Posix>, node: Envoy_Config_Core_V3_Node, port: Int) async throws {
        let session = DeltaSession(self, node: node)
        let (requests, sink) = AsyncStream<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>.makeStream()
        for request in session.start() { sink.yield(request) }
        try await client.bidirectionalStreaming(
            request: StreamingClientRequest(of: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest.self) { writer in
                for await request in requests { try await writer.write(request) }
            },
            descriptor: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Method.DeltaAggregatedResources.descriptor,
            serializer: ProtobufSerializer<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>(),
            deserializer: RawDeserializer(),
            options: Self.callOptions
        ) { response in
            defer { sink.finish() }
            self.opened(port: port)
            for try await bytes in response.messages {
                for request in session.handle(bytes, at: .now) { sink.yield(request) }
            }
        }
    }

    /// One state-of-the-world ADS stream's client logic, whatever carries it: the first requests, then
    /// for each response the requests it calls for (the ACK, and EDS subscriptions when clusters change).
    /// Used by one stream at a time.
    final class SotWSession: @unchecked Sendable {
        private let sidecar: SimulatedSidecar
        private let node: Envoy_Config_Core_V3_Node
        private var subscribed: [String] = []
        private var acceptedEndpoints = ""

        init(_ sidecar: SimulatedSidecar, node: Envoy_Config_Core_V3_Node) {
            self.sidecar = sidecar
            self.node = node
        }

        func start() -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            let (held, versions) = sidecar.state.withLock { (Array($0.clusters).sorted(), $0.sotwVersions) }
            subscribed = held
            acceptedEndpoints = versions[ResourceType.endpoint.typeURL] ?? ""
            var first = Envoy_Service_Discovery_V3_DiscoveryRequest()
            first.node = node
            first.typeURL = ResourceType.cluster.typeURL
            first.versionInfo = versions[ResourceType.cluster.typeURL] ?? ""
            guard !held.isEmpty else { return [first] }
            // A reconnect: ask again for the assignments held, with the version they came in.
            var eds = Envoy_Service_Discovery_V3_DiscoveryRequest()
            eds.typeURL = ResourceType.endpoint.typeURL
            eds.resourceNames = held
            eds.versionInfo = versions[ResourceType.endpoint.typeURL] ?? ""
            return [first, eds]
        }

        func handle(_ bytes: [UInt8], at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            handle(ResponseSummary(reading: bytes, delta: false, keepValues: sidecar.trackContent), at: now)
        }

        func handle(_ response: ResponseSummary, at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            let (version, nonce, typeURL, resources) = (response.version, response.nonce, response.typeURL, response.resources)
            var ack = Envoy_Service_Discovery_V3_DiscoveryRequest()
            ack.typeURL = typeURL
            ack.versionInfo = version
            ack.responseNonce = nonce
            sidecar.state.withLock { $0.sotwVersions[typeURL] = version }
            if typeURL == ResourceType.cluster.typeURL {
                let clusters = resources.map(\.name).sorted()
                sidecar.state.withLock {
                    $0.clustersRemoved += $0.clusters.subtracting(clusters).count
                    $0.clusters = Set(clusters)
                    $0.bytes += response.bytes
                    $0.responses += 1
                }
                guard clusters != subscribed else { return [ack] }
                subscribed = clusters
                var eds = Envoy_Service_Discovery_V3_DiscoveryRequest()
                eds.typeURL = ResourceType.endpoint.typeURL
                eds.resourceNames = clusters
                return [ack, eds]
            }
            sidecar.record(resources, at: now, bytes: response.bytes)
            ack.resourceNames = subscribed
            if sidecar.injectNack() {
                // A NACK names the last version accepted, with the reason.
                ack.versionInfo = acceptedEndpoints
                ack.errorDetail = .with { $0.code = 3; $0.message = "injected NACK (legation-bench --nack-every)" }
                sidecar.state.withLock { [acceptedEndpoints] in $0.sotwVersions[typeURL] = acceptedEndpoints }
            } else {
                acceptedEndpoints = version
            }
            return [ack]
        }
    }

    /// One delta ADS stream's client logic, whatever carries it (see `SotWSession`).
    final class DeltaSession: @unchecked Sendable {
        private let sidecar: SimulatedSidecar
        private let node: Envoy_Config_Core_V3_Node
        private var subscribed: Set<String> = []

        init(_ sidecar: SimulatedSidecar, node: Envoy_Config_Core_V3_Node) {
            self.sidecar = sidecar
            self.node = node
        }

        func start() -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            let versions = sidecar.state.withLock { $0.deltaVersions }
            var first = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            first.node = node
            first.typeURL = ResourceType.cluster.typeURL
            first.resourceNamesSubscribe = ["*"]
            first.initialResourceVersions = versions[ResourceType.cluster.typeURL] ?? [:]
            subscribed = Set(versions[ResourceType.endpoint.typeURL]?.keys ?? [:].keys)
            guard let held = versions[ResourceType.endpoint.typeURL], !held.isEmpty else { return [first] }
            var eds = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            eds.typeURL = ResourceType.endpoint.typeURL
            eds.resourceNamesSubscribe = held.keys.sorted()
            eds.initialResourceVersions = held
            return [first, eds]
        }

        func handle(_ bytes: [UInt8], at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            handle(ResponseSummary(reading: bytes, delta: true, keepValues: sidecar.trackContent), at: now)
        }

        func handle(_ response: ResponseSummary, at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            let (nonce, typeURL, resources, removed) = (response.nonce, response.typeURL, response.resources, response.removed)
            let resourceVersions = response.versions
            sidecar.state.withLock { state in
                for (name, version) in resourceVersions { state.deltaVersions[typeURL, default: [:]][name] = version }
                for name in removed { state.deltaVersions[typeURL]?[name] = nil }
            }
            var ack = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            ack.typeURL = typeURL
            ack.responseNonce = nonce
            if typeURL == ResourceType.cluster.typeURL {
                let clusters = sidecar.state.withLock { state -> Set<String> in
                    state.clustersRemoved += removed.filter(state.clusters.contains).count
                    state.clusters.formUnion(resources.map(\.name))
                    state.clusters.subtract(removed)
                    state.bytes += response.bytes
                    state.responses += 1
                    return state.clusters
                }
                let new = clusters.subtracting(subscribed)
                let gone = subscribed.subtracting(clusters)
                guard !new.isEmpty || !gone.isEmpty else { return [ack] }
                subscribed = clusters
                var eds = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
                eds.typeURL = ResourceType.endpoint.typeURL
                eds.resourceNamesSubscribe = new.sorted()
                eds.resourceNamesUnsubscribe = gone.sorted()
                return [ack, eds]
            }
            sidecar.record(resources, at: now, bytes: response.bytes)
            if sidecar.trackContent, !removed.isEmpty {
                sidecar.state.withLock { state in
                    for name in removed {
                        guard let held = state.endpoints.removeValue(forKey: name) else { continue }
                        state.heldBytes[name] = nil
                        state.changes.append(Change(assignment: name, at: now, added: 0, removed: held.count))
                    }
                }
            }
            if sidecar.injectNack() {
                ack.errorDetail = .with { $0.code = 3; $0.message = "injected NACK (legation-bench --nack-every)" }
            }
            return [ack]
        }
    }

    /// Counts an EDS response; whether to refuse it.
    fileprivate func injectNack() -> Bool {
        state.withLock { state in
            state.endpointResponses += 1
            guard nackEvery > 0, state.endpointResponses % nackEvery == 0 else { return false }
            state.nacks += 1
            return true
        }
    }

    fileprivate func record(_ resources: [(name: String, value: ArraySlice<UInt8>)], at now: ContinuousClock.Instant, bytes: Int) {
        let decoded: [(String, Set<String>)]? = trackContent ? resources.map { ($0.name, Self.endpoints(in: $0.value)) } : nil
        state.withLock { state in
            state.bytes += bytes
            state.responses += 1
            for (offset, resource) in resources.enumerated() {
                let name = resource.name
                if state.assignments[name] == nil { state.assignments[name] = now }
                state.arrivals.append((name, now))
                state.latestArrival[name] = now
                state.latestAnyArrival = now
                guard let decoded else { continue }
                let value = Array(resource.value)
                if state.heldBytes[name] == value {
                    state.resends += 1
                    continue
                }
                let endpoints = decoded[offset].1
                if let held = state.endpoints[name] {
                    state.changes.append(Change(
                        assignment: name, at: now, added: endpoints.subtracting(held).count, removed: held.subtracting(endpoints).count))
                }
                state.heldBytes[name] = value
                state.endpoints[name] = endpoints
            }
        }
    }

    /// "address:port" of every endpoint in an encoded ClusterLoadAssignment.
    static func endpoints(in bytes: ArraySlice<UInt8>) -> Set<String> {
        guard let assignment = try? Envoy_Config_Endpoint_V3_ClusterLoadAssignment(serializedBytes: Array(bytes)) else { return [] }
        var result = Set<String>()
        for locality in assignment.endpoints {
            for endpoint in locality.lbEndpoints {
                let address = endpoint.endpoint.address.socketAddress
                result.insert("\(address.address):\(address.portValue)")
            }
        }
        return result
    }
}
