import LegationTestSupport
import Logging
import MetricsTestKit
import Shared
import Testing

@testable import Ingestor

@Suite(.timeLimit(.minutes(1)))
struct FileSourceTests {
    static let valid = """
        cluster: vm-fleet
        services:
          - namespace: payments
            name: ledger
            ports: [{name: http, port: 80, appProtocol: http}, {name: grpc, port: 9090, appProtocol: grpc}]
            endpoints:
              - {address: 10.20.0.5, ports: {http: 8080, grpc: 9091}, zone: us-east-1a, node: vm-17}
              - {address: "fd00::7", zone: us-east-1b, ready: false, serving: true, terminating: true}
          - name: empty-service
            ports: [{port: 80}]
            failover: zone, cluster=vm-fleet
        """

    @Test func parsesServicesPortsEndpointsAndConditions() throws {
        let parsed = try FileSourceParser.parse(Self.valid)
        #expect(parsed.source.name == "vm-fleet")
        #expect(parsed.sets.count == 2)
        let ledger = parsed.sets[0]
        #expect(ledger.service.description == "payments/ledger")
        #expect(ledger.ports.map(\.name) == ["http", "grpc"])
        #expect(ledger.endpoints[0].targetPorts == [8080, 9091])
        #expect(ledger.endpoints[1].targetPorts == [80, 9090], "the service port when none is given")
        #expect(ledger.endpoints[1].conditions == .init(ready: false, serving: true, terminating: true))
        #expect(parsed.sets[1].service.namespace == "default")
        #expect(parsed.sets[1].endpoints.isEmpty, "a service with no endpoints is published as empty")
        #expect(ledger.failover == nil)
        #expect(parsed.sets[1].failover?.description == "zone,cluster=vm-fleet")
    }

    @Test(arguments: [
        ("services: []", "missing cluster"),
        ("cluster: Bad_Name", "cluster"),
        ("cluster: c\nservices: [{name: web, ports: [{port: 80}], failover: nearest}]", "services[0].failover"),
        ("cluster: c\nservices: [{name: web, ports: [{port: 70000}]}]", "services[0].ports[0]"),
        ("cluster: c\nservices: [{name: web, ports: [{port: 80}], endpoints: [{address: nope}]}]", "services[0].endpoints[0]"),
        (
            "cluster: c\nservices: [{name: web, ports: [{name: http, port: 80}], endpoints: [{address: 10.0.0.1, ports: {grpc: 1}}]}]",
            "grpc"
        ),
        ("cluster: c\nservices: [{name: web, ports: []}, {name: web, ports: []}]", "twice"),
        ("cluster: c\nservices: {name: web}", "services"),
        ("cluster: [unclosed\n  - x: {", "file source"),
        ("- just\n- a list", "file source")
    ])
    func badFilesAreRefusedSayingWhere(_ input: (String, String)) {
        do {
            _ = try FileSourceParser.parse(input.0)
            Issue.record("accepted: \(input.0)")
        } catch {
            #expect(error.description.contains(input.1), "\(error)")
        }
    }

    @Test func watcherReloadsOnChangeAndKeepsTheLastGoodFile() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = try directory.write("endpoints.yaml", Self.valid)
        let store = InMemoryEndpointStore()
        let source = try SourceCluster("vm-fleet")
        let metrics = TestMetrics()
        var options = EndpointPublisher.Options()
        options.leaseTTL = .seconds(5)
        let publisher = EndpointPublisher(store: store, source: source, holder: "file", options: options, logger: .quiet())
        let watcher = FileSourceWatcher(
            path: path, publisher: publisher, pollInterval: .milliseconds(20), logger: .quiet(), metricsFactory: metrics)
        let tasks = [Task { await publisher.run() }, Task { await watcher.run() }]
        defer { tasks.forEach { $0.cancel() } }

        func services() async -> [String] {
            var feed = SourceFeed(source: source)
            _ = feed.apply(await store.snapshot(of: source))
            return feed.services.keys.map(\.name).sorted()
        }
        #expect(await eventually { await services() == ["empty-service", "ledger"] })

        _ = try directory.write(
            "endpoints.yaml", "cluster: vm-fleet\nservices: [{name: web, ports: [{port: 80}], endpoints: [{address: 300.1.1.1}]}]")
        #expect(
            await eventually {
                (try? metrics.expectCounter("legation_ingestor_file_rejected_total", [("source", "vm-fleet")]))?.totalValue == 1
            })
        #expect(await services() == ["empty-service", "ledger"], "the last good file stays published")

        _ = try directory.write(
            "endpoints.yaml", "cluster: vm-fleet\nservices: [{name: web, ports: [{port: 80}], endpoints: [{address: 10.1.1.1}]}]")
        #expect(await eventually { await services() == ["web"] })
    }
}
