import Foundation
import Logging
import Metrics
import Shared

/// Publishes a file source: reads the YAML file, hands its services to the publisher, and reads it again
/// whenever it changes (checked every `pollInterval`, by content). A file that cannot be read or parsed
/// is reported and counted; the last good content stays published.
public final class FileSourceWatcher: Sendable {
    public let path: String
    private let publisher: EndpointPublisher
    private let pollInterval: Duration
    private let logger: Logger
    private let rejected: Counter
    private let loads: Counter

    public init(
        path: String, publisher: EndpointPublisher, pollInterval: Duration = .seconds(1),
        logger: Logger = Logger(label: "legation.file-source"), metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.path = path
        self.publisher = publisher
        self.pollInterval = pollInterval
        self.logger = logger
        let dimensions = [("source", publisher.source.name)]
        rejected = Counter(label: "legation_ingestor_file_rejected_total", dimensions: dimensions, factory: metricsFactory)
        loads = Counter(label: "legation_ingestor_file_loads_total", dimensions: dimensions, factory: metricsFactory)
    }

    /// Reads the file once. - Returns: false if it was rejected (the previous content stays). An
    /// unreadable file is counted on every poll but logged once until it is readable again.
    @discardableResult
    func load(lastContent: inout String?, lastReadError: inout String?) async -> Bool {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
            lastReadError = nil
        } catch {
            rejected.increment()
            if lastReadError != "\(error)" {
                lastReadError = "\(error)"
                logger.error(
                    "cannot read the file source; keeping its last good content", metadata: ["path": "\(path)", "error": "\(error)"])
            }
            return false
        }
        guard text != lastContent else { return true }
        lastContent = text
        do {
            let parsed = try FileSourceParser.parse(text)
            guard parsed.source == publisher.source else {
                throw ModelError(.invalidField, "cluster is \(parsed.source), but this ingestor publishes \(publisher.source)")
            }
            await publisher.replaceAll(parsed.sets)
            loads.increment()
            logger.info("file source loaded", metadata: ["path": "\(path)", "services": "\(parsed.sets.count)"])
            return true
        } catch {
            rejected.increment()
            logger.error("file source rejected; keeping its last good content", metadata: ["path": "\(path)", "error": "\(error)"])
            return false
        }
    }

    /// Loads the file, then again on every change, until cancelled.
    public func run() async {
        var lastContent: String?
        var lastReadError: String?
        while !Task.isCancelled {
            await load(lastContent: &lastContent, lastReadError: &lastReadError)
            try? await Task.sleep(for: pollInterval)
        }
    }
}
