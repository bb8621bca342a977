import LocalProcesses
import Shared

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
public func freeLoopbackPort() throws -> Int {
    guard let port = freeLoopbackPortNumber() else { throw TestSupportError("no loopback port could be bound") }
    return port
}

public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
