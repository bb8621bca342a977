import Shared
import Yams

/// Turns file-source YAML into validated endpoint sets. Every problem is reported with its place in the
/// file, and any problem refuses the whole file (the caller keeps the last good one).
public enum FileSourceParser {
    /// The largest file accepted.
    public static let maximumBytes = 32 << 20

    public struct Parsed: Sendable {
        public var source: SourceCluster
        public var sets: [EndpointSet]
    }

    public static func parse(_ text: String) throws(ModelError) -> Parsed {
        guard text.utf8.count <= maximumBytes else {
            throw ModelError(.tooLarge, "file source is \(text.utf8.count) bytes; at most \(maximumBytes) are read")
        }
        let document: FileSourceDocument
        do {
            document = try YAMLDecoder().decode(FileSourceDocument.self, from: text)
        } catch let error as DecodingError {
            throw ModelError(.invalidField, "file source: \(describe(error))")
        } catch {
            throw ModelError(.invalidField, "file source is not valid YAML: \(error)")
        }
        let source: SourceCluster
        do { source = try SourceCluster(document.cluster) } catch { throw at("cluster", error) }

        var sets: [EndpointSet] = []
        var seen = Set<ServiceKey>()
        for (serviceIndex, entry) in (document.services ?? []).enumerated() {
            let place = "services[\(serviceIndex)]"
            let key: ServiceKey
            do { key = try ServiceKey(namespace: entry.namespace ?? "default", name: entry.name) } catch { throw at(place, error) }
            guard seen.insert(key).inserted else { throw ModelError(.invalidField, "\(place): \(key) is listed twice") }
            var ports: [ServicePort] = []
            for (portIndex, port) in entry.ports.enumerated() {
                let portPlace = "\(place).ports[\(portIndex)]"
                guard let number = UInt16(exactly: port.port), number > 0 else {
                    throw ModelError(.invalidPort, "\(portPlace): port \(port.port) is not 1...65535")
                }
                guard let transport = ServicePort.TransportProtocol(rawValue: (port.protocol ?? "TCP").uppercased()) else {
                    throw ModelError(.invalidPort, "\(portPlace): protocol \(port.protocol ?? "") is not TCP, UDP or SCTP")
                }
                do {
                    ports.append(
                        try ServicePort(
                            name: port.name ?? "", port: number, transportProtocol: transport, appProtocol: port.appProtocol ?? ""))
                } catch { throw at(portPlace, error) }
            }
            var failover: FailoverPolicy?
            if let text = entry.failover {
                do { failover = try FailoverPolicy(parsing: text) } catch { throw at("\(place).failover", error) }
            }
            var endpoints: [Endpoint] = []
            for (endpointIndex, endpoint) in (entry.endpoints ?? []).enumerated() {
                let endpointPlace = "\(place).endpoints[\(endpointIndex)]"
                var targets: [UInt16] = []
                for port in ports {
                    let target = endpoint.ports?[port.name] ?? Int(port.port)
                    guard let number = UInt16(exactly: target), number > 0 else {
                        throw ModelError(.invalidPort, "\(endpointPlace): target port \(target) for \(port.name) is not 1...65535")
                    }
                    targets.append(number)
                }
                if let names = endpoint.ports?.keys, let unknown = names.first(where: { name in !ports.contains { $0.name == name } }) {
                    throw ModelError(.invalidPort, "\(endpointPlace): port \(unknown) is not a port of \(key)")
                }
                let ready = endpoint.ready ?? true
                let conditions = Endpoint.Conditions(
                    ready: ready, serving: endpoint.serving ?? ready, terminating: endpoint.terminating ?? false)
                do {
                    endpoints.append(
                        try Endpoint(
                            address: endpoint.address, targetPorts: targets, zone: endpoint.zone ?? "", node: endpoint.node ?? "",
                            hostname: endpoint.hostname ?? "", targetPod: endpoint.pod ?? "", conditions: conditions))
                } catch { throw at(endpointPlace, error) }
            }
            do {
                sets.append(try EndpointSet(source: source, service: key, ports: ports, endpoints: endpoints, failover: failover))
            } catch { throw at(place, error) }
        }
        return Parsed(source: source, sets: sets)
    }

    private static func at(_ place: String, _ error: ModelError) -> ModelError {
        ModelError(error.code, "\(place): \(error.message)")
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "(top)" : text)
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context)): missing \(key.stringValue)"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "\(error)"
        }
    }
}
