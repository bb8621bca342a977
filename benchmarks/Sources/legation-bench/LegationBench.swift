import ArgumentParser

/// Legation's benchmark harness. Every scenario is bounded in count and time and talks only to
/// loopback addresses; results go to benchmarks/results/ as JSON plus a line of markdown.
@main
struct LegationBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "legation-bench",
        abstract: "Load-test Legation's components and report figures.",
        subcommands: [StoreBenchmark.self, IngestBenchmark.self, FanoutBenchmark.self, ScenarioCommand.self, ChurnCommand.self])
}
