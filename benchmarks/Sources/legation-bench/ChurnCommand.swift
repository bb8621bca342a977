import ArgumentParser
import Foundation
import LegationTestSupport

/// `legation-bench churn`: the churn generator on its own, for load-testing ingestors you run yourself.
struct ChurnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "churn",
        abstract: "Fake Kubernetes API servers whose EndpointSlices change at a set rate (point ingestors at the kubeconfigs written).")

    @Option(help: "Source clusters (one fake API server each).") var sources = 3
    @Option(help: "Services per source.") var services = 100
    @Option(help: "Endpoints per service per source.") var endpoints = 20
    @Option(help: "Changes per second.") var rate = 10.0
    @Option(help: "Changes in all (bounded).") var count = 1000
    @Option(help: "Seconds to serve before the first change (start your ingestors meanwhile).") var settle = 10
    @Option(help: "Give up after this many seconds in all.") var timeout = 600
    @Option(help: "Where to write one kubeconfig per source.") var kubeconfigDirectory = "churn-kubeconfigs"

    func validate() throws {
        guard (1...6).contains(sources), (1...10_000).contains(services), (1...200).contains(endpoints), rate > 0, rate <= 10_000,
            (1...1_000_000).contains(count), (0...3600).contains(settle), (1...86_400).contains(timeout)
        else { throw ValidationError("a value is out of bounds") }
    }

    func run() async throws {
        let deadline = ContinuousClock.now + .seconds(timeout)
        let churn = try await ChurnGenerator(sources: sources, services: services, endpoints: endpoints)
        for (source, path) in zip(churn.sources, try churn.writeKubeconfigs(to: kubeconfigDirectory)) {
            print("\(source): \(churn.apis[churn.sources.firstIndex(of: source)!].baseURL), kubeconfig \(path)")
        }
        print("serving \(sources) × \(services) services × \(endpoints) endpoints; first change in \(settle) s")
        try await Task.sleep(for: .seconds(settle))
        let made = try await churn.run(rate: rate, count: count, until: deadline) { step, _, _ in
            if (step + 1) % max(1, Int(rate) * 10) == 0 { print("\(step + 1) changes") }
        }
        print("made \(made) changes at \(rate)/s")
        await churn.shutdown()
    }
}
