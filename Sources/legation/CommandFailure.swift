import AdminHTTP
import AsyncHTTPClient
import Foundation
import LocalProcesses
import Logging
import NIOCore
import Prometheus
import Server
import Shared

struct DemoError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
