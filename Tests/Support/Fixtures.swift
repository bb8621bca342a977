import Shared

/// Small builders for model values in tests.
public enum Fixtures {
    public static func source(_ name: String = "cluster-a") -> SourceCluster { try! SourceCluster(name) }

    public static func service(_ name: String, namespace: String = "default") -> ServiceKey {
        try! ServiceKey(namespace: namespace, name: name)
    }

    /// `count` ready endpoints 10.<octet>.x.y on target port 8080 behind service port http/80.
    public static func endpointSet(
        _ name: String, source: SourceCluster = source(), count: Int = 3, octet: Int = 1,
        conditions: Endpoint.Conditions = .ready
    ) -> EndpointSet {
        let port = try! ServicePort(name: "http", port: 80, appProtocol: "http")
        let endpoints = (0..<count).map { index in
            try! Endpoint(
                address: "10.\(octet).\(index / 250).\(index % 250 + 1)", targetPorts: [8080], zone: "zone-\(index % 3)",
                node: "node-\(index % 5)", hostname: "", targetPod: "default/\(name)-\(index)", conditions: conditions)
        }
        return try! EndpointSet(source: source, service: service(name), ports: [port], endpoints: endpoints)
    }
}
