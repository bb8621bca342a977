/// The demo's two source clusters, as file-source YAML: the same `web`, `checkout` and `echo` services
/// run in both, so Legation merges them; `ledger` runs in west only. `echo`'s pods are real: small HTTP
/// servers on 127.0.0.2-4 at `ECHO_PORT` (replaced when the files are written), which Envoy calls.
enum DemoData {
    static let east = """
        cluster: east
        services:
          - name: web
            ports: [{name: http, port: 80, appProtocol: http}]
            endpoints:
              - {address: 10.10.0.11, ports: {http: 8080}, zone: us-east-1a, node: east-node-1, pod: default/web-7d9f-a}
              - {address: 10.10.0.12, ports: {http: 8080}, zone: us-east-1b, node: east-node-2, pod: default/web-7d9f-b}
          - name: checkout
            ports: [{name: grpc, port: 9090, appProtocol: grpc}]
            endpoints:
              - {address: 10.10.1.21, zone: us-east-1a, node: east-node-1, pod: default/checkout-1}
          - name: echo
            ports: [{name: http, port: 80}]
            endpoints:
              - {address: 127.0.0.2, ports: {http: ECHO_PORT}, zone: us-east-1a, node: east-node-1, pod: default/echo-east-a}
              - {address: 127.0.0.3, ports: {http: ECHO_PORT}, zone: us-east-1b, node: east-node-2, pod: default/echo-east-b}
        """

    static let west = """
        cluster: west
        services:
          - name: web
            ports: [{name: http, port: 80, appProtocol: http}]
            endpoints:
              - {address: 10.20.0.11, ports: {http: 8080}, zone: us-west-2a, node: west-node-1, pod: default/web-5c2e-a}
          - name: checkout
            ports: [{name: grpc, port: 9090, appProtocol: grpc}]
            endpoints:
              - {address: 10.20.1.21, zone: us-west-2a, node: west-node-1, pod: default/checkout-7}
              - {address: "fd00:20::22", zone: us-west-2b, node: west-node-2, pod: default/checkout-8}
          - namespace: payments
            name: ledger
            ports: [{name: http, port: 80}]
            endpoints:
              - {address: 10.20.2.31, ports: {http: 8443}, zone: us-west-2a, node: west-node-1}
          - name: echo
            ports: [{name: http, port: 80}]
            endpoints:
              - {address: 127.0.0.4, ports: {http: ECHO_PORT}, zone: us-west-2a, node: west-node-1, pod: default/echo-west-a}
        """

    /// The echo pods: name, address.
    static let echoPods = [("echo-east-a", "127.0.0.2"), ("echo-east-b", "127.0.0.3"), ("echo-west-a", "127.0.0.4")]

    /// East after `echo-east-a` (in the sidecar's zone) got its termination signal: serving its last
    /// requests, terminating.
    static let eastDraining = east.replacingOccurrences(
        of: "pod: default/echo-east-a}",
        with: "pod: default/echo-east-a, ready: false, serving: true, terminating: true}")

    /// East after `web` was scaled from two replicas to three (with `echo-east-a` still terminating).
    static let eastScaled = eastDraining.replacingOccurrences(
        of: "      - {address: 10.10.0.12, ports: {http: 8080}, zone: us-east-1b, node: east-node-2, pod: default/web-7d9f-b}",
        with: """
                  - {address: 10.10.0.12, ports: {http: 8080}, zone: us-east-1b, node: east-node-2, pod: default/web-7d9f-b}
                  - {address: 10.10.0.13, ports: {http: 8080}, zone: us-east-1c, node: east-node-3, pod: default/web-7d9f-c}
            """)
}
