import Foundation
import Logging

extension Logger {
    /// A logger for components under test: only critical messages, so expected warnings (retries while
    /// partitioned, rejected records) do not bury a failure in the output. Set LEGATION_TEST_LOG=1 to see all.
    public static func quiet(_ label: String = "legation.test") -> Logger {
        var logger = Logger(label: label)
        if ProcessInfo.processInfo.environment["LEGATION_TEST_LOG"] == nil { logger.logLevel = .critical }
        return logger
    }
}
