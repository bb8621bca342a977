import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL

/// What went wrong talking to the API server.
public struct KubernetesError: Error, Sendable, CustomStringConvertible {
    /// The API server's Status answer, when there was one.
    public var status: StatusObject?
    public var httpStatus: Int?
    public var message: String

    public init(status: StatusObject? = nil, httpStatus: Int? = nil, message: String) {
        self.status = status
        self.httpStatus = httpStatus
        self.message = message
    }

    public var isExpired: Bool { status?.isExpired == true || httpStatus == 410 }
    public var description: String {
        var text = message
        if let httpStatus { text += " (HTTP \(httpStatus))" }
        if let status { text += ": \(status)" }
        return text
    }
}
