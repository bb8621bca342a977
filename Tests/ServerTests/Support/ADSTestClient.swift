import EnvoyAPI
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import Server
import Shared
import Synchronization

/// One ADS stream of an in-process client over real HTTP/2 on loopback: send requests, await responses.
/// Responses are read by a background task into a buffer, so waiting with a timeout never cancels the RPC.
final class ADSStream: Sendable {
    private struct Inbox {
        var responses: [Envoy_Service_Discovery_V3_DiscoveryResponse] = []
        var ended = false
        var error: (any Error)?
    }

    private let sink: AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.Continuation
    private let inbox = Mutex(Inbox())

    init(sink: AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.Continuation) {
        self.sink = sink
    }

    func receive(_ messages: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryResponse, any Error>) async {
        do {
            for try await message in messages { inbox.withLock { $0.responses.append(message) } }
            inbox.withLock { $0.ended = true }
        } catch {
            inbox.withLock {
                $0.error = error
                $0.ended = true
            }
        }
    }

    func send(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest) { sink.yield(request) }

    /// The next response, or nil when the stream ended; throws the stream's error status, or
    /// `TimeoutError` when nothing came within `timeout`.
    func next(timeout: Duration = .seconds(10)) async throws -> Envoy_Service_Discovery_V3_DiscoveryResponse? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (response, ended, error) = inbox.withLock { inbox in
                (inbox.responses.isEmpty ? nil : inbox.responses.removeFirst(), inbox.ended, inbox.error)
            }
            if let response { return response }
            if let error { throw error }
            if ended { return nil }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw TimeoutError()
    }

    /// ACKs a response with the given subscription.
    func ack(_ response: Envoy_Service_Discovery_V3_DiscoveryResponse, names: [String] = []) {
        send(request(ResourceType(rawValue: response.typeURL), names: names, version: response.versionInfo, nonce: response.nonce))
    }

    /// Whether nothing arrives within `window`.
    func isQuiet(for window: Duration = .milliseconds(300)) async -> Bool {
        do {
            _ = try await next(timeout: window)
            return false
        } catch {
            return error is TimeoutError
        }
    }

    struct TimeoutError: Error {}
}

/// Runs `body` with an ADS stream to `127.0.0.1:port`; the stream closes when `body` returns.
func withADSStream<T: Sendable>(
    port: Int, security: HTTP2ClientTransport.Posix.TransportSecurity = .plaintext,
    _ body: @escaping @Sendable (ADSStream) async throws -> T
) async throws -> T {
    try await withGRPCClient(
        transport: .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: security)
    ) { client in
        let ads = Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Client(wrapping: client)
        let (requests, sink) = AsyncStream<Envoy_Service_Discovery_V3_DiscoveryRequest>.makeStream()
        return try await ads.streamAggregatedResources(
            requestProducer: { writer in
                for await request in requests { try await writer.write(request) }
            },
            onResponse: { response in
                let stream = ADSStream(sink: sink)
                defer { sink.finish() }
                return try await withThrowingTaskGroup(of: T?.self) { group in
                    group.addTask {
                        await stream.receive(response.messages)
                        return nil
                    }
                    let result = try await body(stream)
                    group.cancelAll()
                    return result
                }
            })
    }
}

/// A writer for tests: holds a lease on a source and publishes sets.
struct TestWriter: Sendable {
    let store: any EndpointStoreWriter
    let lease: Lease

    static func start(_ store: any EndpointStoreWriter, source: SourceCluster) async throws -> TestWriter {
        let lease = try await store.acquireLease(source: source, holder: "test-\(source)", ttl: .seconds(60))!
        try await store.heartbeat(lease: lease, ttl: .seconds(60))
        return TestWriter(store: store, lease: lease)
    }

    /// Publishes sets (and removals) and marks the source synced.
    func publish(_ sets: [EndpointSet], deleting: [ServiceKey] = []) async throws {
        let result = try await store.write(sets.map(StoreWrite.put) + deleting.map(StoreWrite.delete), lease: lease)
        try await store.markSynced(generation: result.generation, serviceCount: sets.count, lease: lease)
    }
}
