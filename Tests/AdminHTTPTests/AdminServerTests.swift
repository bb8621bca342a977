import AdminHTTP
import AsyncHTTPClient
import Metrics
import Prometheus
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1)))
struct AdminServerTests {
    @Test func healthReadinessAndMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        Counter(label: "legation_test_total", dimensions: [("source", "east")], factory: factory).increment(by: 3)
        let ready = Mutex(false)
        let admin = try await AdminServer.start(
            host: "127.0.0.1", port: 0, registry: registry, ready: { ready.withLock { $0 } ? nil : "initial list not yet published" },
            routes: ["/status": { AdminServer.Response(contentType: "application/json", body: #"{"ok":true}"#) }])
        func get(_ path: String) async throws -> (Int, String) {
            let response = try await HTTPClient.shared.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(admin.port)\(path)"), timeout: .seconds(5))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), String(buffer: body))
        }
        #expect(try await get("/healthz") == (200, "ok\n"))
        let notReady = try await get("/readyz")
        #expect(notReady.0 == 503 && notReady.1.contains("initial list"))
        ready.withLock { $0 = true }
        #expect(try await get("/readyz").0 == 200)
        let metrics = try await get("/metrics")
        #expect(metrics.1.contains(#"legation_test_total{source="east"} 3"#))
        #expect(try await get("/status").1 == #"{"ok":true}"#)
        #expect(try await get("/nope").0 == 404)
        await admin.close()
    }

    @Test func protectedRoutesNeedTheBearerTokenWhileProbesAndMetricsStayOpen() async throws {
        let registry = PrometheusCollectorRegistry()
        let token = Mutex<String?>("s3cret-token")
        let admin = try await AdminServer.start(
            host: "127.0.0.1", port: 0, registry: registry, ready: { nil },
            protectedRoutes: ["/debug/clients": { AdminServer.Response(contentType: "application/json", body: "[]") }],
            bearerToken: { token.withLock { $0 } })
        func get(_ path: String, authorization: String? = nil) async throws -> Int {
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(admin.port)\(path)")
            if let authorization { request.headers.add(name: "Authorization", value: authorization) }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(5))
            _ = try await response.body.collect(upTo: 1 << 20)
            return Int(response.status.code)
        }
        #expect(try await get("/debug/clients") == 401)
        #expect(try await get("/debug/clients", authorization: "Bearer wrong-token!") == 401)
        #expect(try await get("/debug/clients", authorization: "Bearer s3cret-tok") == 401)
        #expect(try await get("/debug/clients", authorization: "Basic s3cret-token") == 401)
        #expect(try await get("/debug/clients", authorization: "Bearer s3cret-token") == 200)
        #expect(try await get("/healthz") == 200)
        #expect(try await get("/readyz") == 200)
        #expect(try await get("/metrics") == 200)
        // A rotated token takes effect on the next request; no token configured opens the route.
        token.withLock { $0 = "rotated" }
        #expect(try await get("/debug/clients", authorization: "Bearer s3cret-token") == 401)
        #expect(try await get("/debug/clients", authorization: "Bearer rotated") == 200)
        token.withLock { $0 = nil }
        #expect(try await get("/debug/clients") == 200)
        await admin.close()
    }
}
