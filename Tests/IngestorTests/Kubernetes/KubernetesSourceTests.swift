import Foundation
import LegationTestSupport
import Logging
import MetricsTestKit
import RedisStore
import Shared
import Testing

@testable import Ingestor

#if canImport(Glibc)
    import Glibc
#endif

/// A fake API server (TLS, bearer token) → KubernetesClient → aggregator → publisher → real Redis.
@Suite(.timeLimit(.minutes(1)))
struct KubernetesSourceTests {
    let source = try! SourceCluster("kind")

    struct Rig {
        let api: FakeKubernetesAPI
        let redis: RedisServer
        let store: RedisEndpointStore
        let client: KubernetesClient
        let kubernetes: KubernetesSource
        let metrics: TestMetrics
        let tasks: [Task<Void, Never>]

        func services(_ source: SourceCluster) async throws -> [ServiceKey: EndpointSet] {
            var feed = SourceFeed(source: source)
            _ = feed.apply(try await store.snapshot(of: source))
            return feed.services
        }

        func stop() async {
            tasks.forEach { $0.cancel() }
            for task in tasks { await task.value }
            await client.shutdown()
            await store.close()
            await api.shutdown()
        }
    }

    func rig(token: String = "good-token") async throws -> Rig {
        var options = FakeKubernetesAPI.Options()
        let pki = try await TestCertificates(in: TemporaryDirectory(prefix: "legation-pki"))
        options.tls = pki
        options.tokens = ["good-token"]
        let api = try await FakeKubernetesAPI(options)
        try api.apply(.services, json: try KubeFixtures.data("service-graceful-term.json"))
        try api.apply(.services, json: try KubeFixtures.data("service-dualstack-nodeport.json"))
        try api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-graceful-1-ready.json"))
        try api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-dualstack-ipv4.json"))
        try api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-dualstack-ipv6.json"))

        let redis = try await RedisServer()
        let store = RedisEndpointStore(try redis.configuration(), logger: .quiet())
        let connection = KubernetesConnection(
            server: api.baseURL, certificateAuthority: Array(try Data(contentsOf: URL(fileURLWithPath: pki.caCertificate))),
            credentials: .token(token))
        let client = try KubernetesClient(connection, readTimeout: .seconds(30))
        var publisherOptions = EndpointPublisher.Options()
        publisherOptions.leaseTTL = .seconds(5)
        let publisher = EndpointPublisher(store: store, source: source, holder: "i1", options: publisherOptions, logger: .quiet())
        var sourceOptions = KubernetesSource.Options()
        sourceOptions.pageSize = 1  // every list is paginated
        sourceOptions.initialBackoff = .milliseconds(20)
        sourceOptions.maximumBackoff = .milliseconds(200)
        let metrics = TestMetrics()
        let kubernetes = KubernetesSource(
            client: client, publisher: publisher, selection: ServiceSelection(), options: sourceOptions, logger: .quiet(),
            metricsFactory: metrics)
        let tasks = [Task { await publisher.run() }, Task { await kubernetes.run() }]
        return Rig(api: api, redis: redis, store: store, client: client, kubernetes: kubernetes, metrics: metrics, tasks: tasks)
    }

    @Test func listsPaginatedOverTLSThenFollowsTheWatch() async throws {
        let rig = try await rig()
        #expect(await eventually { (try? await rig.store.snapshot(of: source).canary) != nil })
        let initial = try await rig.services(source)
        #expect(initial.keys.map(\.description).sorted() == ["default/echo-dualstack", "test/graceful-term-svc"])
        #expect(initial[try ServiceKey(namespace: "default", name: "echo-dualstack")]?.endpoints.count == 4)
        #expect(rig.api.requests.contains { $0.contains("continue=") }, "pages were followed")
        #expect(rig.api.requests.contains { $0.contains("watch=true") && $0.contains("allowWatchBookmarks=true") })

        // A pod terminates: the watch carries it to Redis.
        try rig.api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-graceful-2-terminating.json"))
        let graceful = try ServiceKey(namespace: "test", name: "graceful-term-svc")
        #expect(await eventually { (try? await rig.services(source))?[graceful]?.endpoints.first?.conditions.terminating == true })
        // Garbage in the stream is skipped and counted; the watch goes on.
        rig.api.injectIntoWatches(.endpointslices, bytes: Array(#"{"type":"ADDED","object":{"metadata":{"name":7}}}"#.utf8) + [10])
        try rig.api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-graceful-3-empty.json"))
        #expect(await eventually { (try? await rig.services(source))?[graceful]?.endpoints.isEmpty == true })
        // A slice carrying the controller's last-change-trigger-time (2023 in the fixture) gives a lag.
        try rig.api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-graceful-1-ready.json"))
        #expect(
            await eventually {
                ((try? rig.metrics.expectTimer("legation_ingestor_change_lag_seconds", [("source", "kind")]))?.lastValue ?? 0) > 0
            })
        #expect(
            (try? rig.metrics.expectCounter(
                "legation_ingestor_malformed_events_total", [("source", "kind"), ("resource", "endpointslices")]))?.totalValue == 1)

        // The service goes away.
        try rig.api.delete(.services, namespace: "test", name: "graceful-term-svc")
        #expect(await eventually { (try? await rig.services(source))?[graceful] == nil })
        await rig.stop()
    }

    @Test func goneVersionsRelistAndPublishOnlyDifferences() async throws {
        let rig = try await rig()
        #expect(await eventually { (try? await rig.store.snapshot(of: source).canary) != nil })
        let revisionBefore = try await rig.store.snapshot(of: source).revision

        // History compacted and the watch expired: both resources relist, nothing changed, nothing written.
        rig.api.compact()
        rig.api.expireWatches(.endpointslices)
        rig.api.expireWatches(.services)
        #expect(
            await eventually {
                ((try? rig.metrics.expectCounter("legation_ingestor_lists_total", [("source", "kind"), ("resource", "endpointslices")]))?
                    .totalValue ?? 0) >= 2
            })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await rig.store.snapshot(of: source).revision == revisionBefore, "a relist without changes writes nothing")

        // A change made while the watch is down arrives through the relist.
        rig.api.compact()
        rig.api.closeWatches()
        try rig.api.apply(.endpointslices, json: try KubeFixtures.data("endpointslice-graceful-2-terminating.json"))
        rig.api.compact()  // the watch resumes from a version the server no longer has: HTTP 410
        let graceful = try ServiceKey(namespace: "test", name: "graceful-term-svc")
        #expect(await eventually { (try? await rig.services(source))?[graceful]?.endpoints.first?.conditions.terminating == true })
        await rig.stop()
    }

    @Test func aRejectedTokenPublishesNothingAndKeepsTrying() async throws {
        let rig = try await rig(token: "stolen-token")
        #expect(
            await eventually {
                ((try? rig.metrics.expectCounter("legation_ingestor_list_errors_total", [("source", "kind"), ("resource", "services")]))?
                    .totalValue ?? 0) >= 2
            }, "it keeps trying, with backoff")
        #expect(try await rig.store.snapshot(of: source).canary == nil)
        #expect(await !rig.kubernetes.isListed)
        await rig.stop()
    }

    /// A server that accepts connections and never answers (hung, or a proxy with no backend) fails
    /// each request after the response timeout, with a message saying so; the client does not wait for
    /// the read timeout.
    @Test func aServerThatNeverAnswersFailsAfterTheResponseTimeout() async throws {
        let (listener, port) = try Self.listenOnLoopback()  // the kernel completes handshakes; nobody reads
        defer { close(listener) }
        let client = try KubernetesClient(
            KubernetesConnection(server: "http://127.0.0.1:\(port)"), readTimeout: .seconds(300), responseTimeout: .milliseconds(800))
        let started = ContinuousClock.now
        let error = await #expect(throws: IngestorError.self) {
            _ = try await client.list(ServiceObject.self, path: "/api/v1/services")
        }
        #expect(error?.code == .unreachable, "a server that never answers")
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(700) && waited < .seconds(10), "failed after \(waited)")
        do {
            _ = try await client.list(ServiceObject.self, path: "/api/v1/services")
            Issue.record("a server that never answers gave a list")
        } catch {
            #expect("\(error)".contains("no response within"), "\(error)")
        }
        await client.shutdown()
    }

    /// A list answer must be exactly one JSON object: junk after it, a second object, an array or a
    /// truncated object are refused with an error naming the list (and the object is framed as it
    /// arrives, so a good answer split across many writes reads the same).
    @Test func aListAnswerThatIsNotOneObjectIsRefused() async throws {
        let good =
            #"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"web","namespace":"default","resourceVersion":"5"},"spec":{"ports":[{"name":"http","port":80}]}}]}"#
        let cases: [(body: String, accepted: Bool)] = [
            (good, true), (good + "\n", true), (good + " x", false), (good + good, false), ("[" + good + "]", false),
            (String(good.dropLast(3)), false), ("", false)
        ]
        for (body, accepted) in cases {
            let port = try serveOnce(Array(body.utf8))
            let client = try KubernetesClient(KubernetesConnection(server: "http://127.0.0.1:\(port)"), responseTimeout: .seconds(5))
            do {
                let (items, version) = try await client.list(ServiceObject.self, path: "/api/v1/services")
                #expect(accepted, "accepted \(body.suffix(20))")
                #expect(items.map(\.metadata.name) == ["web"] && version == "7")
            } catch {
                #expect(!accepted, "refused \(body.suffix(20)): \(error)")
                #expect("\(error)".contains("/api/v1/services"), "\(error)")
            }
            await client.shutdown()
        }
    }

    /// Answers one HTTP request with `body` (200, JSON) written in 7-byte pieces, then closes.
    private func serveOnce(_ body: [UInt8]) throws -> Int {
        let (listener, port) = try Self.listenOnLoopback()
        let response =
            Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
            + body
        Thread.detachNewThread {
            defer { close(listener) }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(connection, &request, request.count)
            for start in stride(from: 0, to: response.count, by: 7) {
                let piece = Array(response[start..<min(start + 7, response.count)])
                _ = write(connection, piece, piece.count)
            }
        }
        return port
    }

    /// A listening TCP socket on 127.0.0.1 and its port.
    private static func listenOnLoopback() throws -> (socket: Int32, port: Int) {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound else {
            close(listener)
            throw TestSupportError("cannot listen on 127.0.0.1")
        }
        return (listener, Int(UInt16(bigEndian: address.sin_port)))
    }
}
