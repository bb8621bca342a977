import ArgumentParser
import Foundation
import Ingestor
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Shared

enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}
