import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Metrics
import NIOCertificateReloading
import NIOCore
import NIOSSL
import ServiceLifecycle
import Shared

/// The xds-server cannot start as configured.
public struct XDSServerStartError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
