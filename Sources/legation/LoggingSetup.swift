import ArgumentParser
import Logging

/// Logging, bootstrapped once per process by the command that runs.
enum LoggingSetup {
    static func bootstrap(level: Logger.Level, json: Bool) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return json ? JSONLogHandler(label: label, level: level) : handler
        }
    }
}
