import ArgumentParser
import Logging

/// The one binary: a subcommand per role, plus the local demo and operator tools.
@main
struct Legation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "legation",
        abstract: "Multi-cluster Envoy control plane: ingestors publish endpoints to Redis, xds-servers serve Envoy.",
        subcommands: [
            DemoCommand.self, IngestorCommand.self, XDSServerCommand.self, StatusCommand.self, StoreCommand.self, EnvoyBootstrapCommand.self
        ]
    )
}
