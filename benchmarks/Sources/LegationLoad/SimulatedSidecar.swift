import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Server
import Synchronization

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
        servers: [(host: String, port: Int)], zone: String, reconnect: Bool = false, retryPause: ClosedRange<Int> = 50...250,
        client: Client = .grpcSwift
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
                    try await withGRPCClient(
                        transport: .http2NIOPosix(target: .ipv4(address: host, port: port), transportSecurity: .plaintext)
                    ) { client in
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
                start: session.encode(session.start()), summary: summary,
                handle: { response in session.encode(session.handle(response, at: .now)) }, opened: opened)
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

    /// Counts an EDS response; whether to refuse it.
    func injectNack() -> Bool {
        state.withLock { state in
            state.endpointResponses += 1
            guard nackEvery > 0, state.endpointResponses % nackEvery == 0 else { return false }
            state.nacks += 1
            return true
        }
    }

    func record(_ resources: [(name: String, value: ArraySlice<UInt8>)], at now: ContinuousClock.Instant, bytes: Int) {
        let decoded: [(String, Set<String>)]? = trackContent ? resources.map { ($0.name, Self.endpoints(in: $0.value)) } : nil
        state.withLock { state in
            state.bytes += bytes
            state.responses += 1
            // Room for a first response at once, not grown by doubling (rehashing every name) as it is read.
            state.assignments.reserveCapacity(resources.count)
            state.latestArrival.reserveCapacity(resources.count)
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
                    state.changes.append(
                        Change(
                            assignment: name, at: now, added: endpoints.subtracting(held).count, removed: held.subtracting(endpoints).count)
                    )
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
