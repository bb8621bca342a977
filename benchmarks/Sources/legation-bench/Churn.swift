import ArgumentParser
import Foundation
import LegationTestSupport

/// The churn generator: fake Kubernetes API servers (one per source cluster), each holding S services
/// of E endpoints as EndpointSlices in namespace `bench`, changing one slice at a set rate, bounded in
/// count and time. Each change moves one endpoint of one service to a new address, so every change is
/// a real difference that must reach every sidecar.
final class ChurnGenerator: @unchecked Sendable {
    let apis: [FakeKubernetesAPI]
    let sources: [String]
    let services: Int
    let endpoints: Int
    private var generations: [Int: Int] = [:]  // per (source, service) key

    init(sources: Int, services: Int, endpoints: Int) async throws {
        self.sources = (0..<sources).map { "cluster-\($0)" }
        self.services = services
        self.endpoints = endpoints
        var apis: [FakeKubernetesAPI] = []
        for _ in 0..<sources { apis.append(try await FakeKubernetesAPI()) }
        self.apis = apis
        for source in 0..<sources {
            for service in 0..<services {
                try apis[source].apply(.services, json: Data(serviceJSON(service: service).utf8))
                try apis[source].apply(.endpointslices, json: Data(sliceJSON(source: source, service: service, generation: 0).utf8))
            }
        }
    }

    /// The xDS cluster name of service `service` (port `http`).
    static func cluster(_ service: Int) -> String { "bench/svc-\(service):http" }

    func serviceJSON(service: Int) -> String {
        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-\#(service)","namespace":"bench","uid":"svc-\#(service)"},"spec":{"type":"ClusterIP","clusterIP":"10.96.0.10","ports":[{"name":"http","port":80,"protocol":"TCP","targetPort":8080}]}}"#
    }

    /// Endpoint 0 of each slice moves on with the generation (among `250 - endpoints` addresses none of
    /// the others use); the others stay.
    func sliceJSON(source: Int, service: Int, generation: Int) -> String {
        let list = (0..<endpoints).map { e in
            let host = e == 0 ? endpoints + generation % (250 - endpoints) : e
            let address = "10.\(source * 40 + service / 250 % 40).\(service % 250).\(host)"
            return
                #"{"addresses":["\#(address)"],"conditions":{"ready":true,"serving":true,"terminating":false},"zone":"\#(sources[source])-zone-\#(e % 3)","nodeName":"node-\#(e % 10)","targetRef":{"kind":"Pod","namespace":"bench","name":"svc-\#(service)-\#(e)-\#(host)"}}"#
        }.joined(separator: ",")
        return
            #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"svc-\#(service)-\#(sources[source])","namespace":"bench","labels":{"kubernetes.io/service-name":"svc-\#(service)"}},"addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],"endpoints":[\#(list)]}"#
    }

    /// Change number `step`: service `step % services`, in source `step / services % sources`, so the
    /// same cluster changes again only after every other service did (one change is timed at a time).
    func change(_ step: Int) throws -> (cluster: String, at: ContinuousClock.Instant) {
        let service = step % services
        let source = step / services % sources.count
        let key = source * services + service
        let generation = generations[key, default: 0] + 1
        generations[key] = generation
        let json = Data(sliceJSON(source: source, service: service, generation: generation).utf8)
        let at = ContinuousClock.now
        try apis[source].apply(.endpointslices, json: json)
        return (Self.cluster(service), at)
    }

    /// Writes one kubeconfig per source (`<source>.kubeconfig`), for ingestors.
    func writeKubeconfigs(to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try zip(sources, apis).map { source, api in
            let path = URL(fileURLWithPath: directory).appendingPathComponent("\(source).kubeconfig").path
            let text = """
                apiVersion: v1
                kind: Config
                current-context: \(source)
                clusters: [{name: \(source), cluster: {server: "\(api.baseURL)"}}]
                users: [{name: bench, user: {}}]
                contexts: [{name: \(source), context: {cluster: \(source), user: bench}}]
                """
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }

    /// Makes `count` changes at `rate` per second (stopping at `deadline`); each is reported as made.
    func run(
        rate: Double, count: Int, until deadline: ContinuousClock.Instant,
        onChange: (Int, String, ContinuousClock.Instant) -> Void = { _, _, _ in }
    ) async throws -> Int {
        let started = ContinuousClock.now
        for step in 0..<count {
            let due = started + .seconds(Double(step) / rate)
            if due > deadline { return step }
            if due > .now { try await Task.sleep(until: due) }
            let (cluster, at) = try change(step)
            onChange(step, cluster, at)
        }
        return count
    }

    func shutdown() async {
        for api in apis { await api.shutdown() }
    }
}
