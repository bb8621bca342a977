/// One port of a service as its clients address it. An Envoy cluster is (namespace, service, port).
public struct ServicePort: Hashable, Sendable {
    public enum TransportProtocol: String, Hashable, Sendable, CaseIterable {
        case tcp = "TCP"
        case udp = "UDP"
        case sctp = "SCTP"
    }

    /// The port's name; empty only for a service's single unnamed port.
    public let name: String
    /// The service port number, 1...65535.
    public let port: UInt16
    public let transportProtocol: TransportProtocol
    /// Kubernetes `appProtocol` (`grpc`, `kubernetes.io/h2c`, `http`, ...), or empty.
    public let appProtocol: String
    /// This port as an encoded `legation.store.v1.ServicePort` (see `Endpoint.wire`).
    private(set) var wire: [UInt8] = []

    /// - Throws: `ModelError` if the name is neither empty nor a DNS label, or the port is 0.
    public init(name: String, port: UInt16, transportProtocol: TransportProtocol = .tcp, appProtocol: String = "")
        throws(ModelError)
    {
        guard name.isEmpty || DNSName.isLabel(name) else {
            throw ModelError(.invalidName, "port name \(String(reflecting: name.prefix(80))) is not a DNS label")
        }
        guard port != 0 else { throw ModelError(.invalidPort, "port \(name.isEmpty ? "(unnamed)" : name) has number 0") }
        guard DNSName.isToken(appProtocol) else {
            throw ModelError(.invalidField, "appProtocol of port \(name) is not a printable token")
        }
        self.name = name
        self.port = port
        self.transportProtocol = transportProtocol
        self.appProtocol = appProtocol
        self.wire = (try? record.serializedBytes()) ?? []
    }

    public static func == (lhs: ServicePort, rhs: ServicePort) -> Bool {
        lhs.name == rhs.name && lhs.port == rhs.port && lhs.transportProtocol == rhs.transportProtocol
            && lhs.appProtocol == rhs.appProtocol
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(port)
    }

    /// True when the port speaks HTTP/2 without TLS (gRPC or h2c), so Envoy must use HTTP/2 upstream.
    public var isHTTP2: Bool {
        switch appProtocol.lowercased() {
        case "grpc", "h2c", "http2", "kubernetes.io/h2c": true
        default: false
        }
    }
}
