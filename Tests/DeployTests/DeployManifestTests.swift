import Foundation
import Ingestor
import LegationTestSupport
import LocalProcesses
import Server
import Shared
import Testing
import Yams

/// deploy/: every overlay renders (`kubectl kustomize`), validates against the Kubernetes schemas
/// (`kubernetes-validate --strict`), and says what the binaries expect: RBAC verbs, probe paths and ports,
/// the HPA's metric, flags and configuration files the binaries accept.
/// kubectl with kustomize v5 (on this project's machine image; Debian's google-cloud-sdk packages it).
let kubectlPath = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }

@Suite(.serialized, .enabled(if: kubectlPath != nil, "kubectl (with kustomize v5) is not installed"))
struct DeployManifestTests {
    static let root = Repository.root
    static let kubectl = kubectlPath
    static let overlays = [
        "overlays/single-cluster", "overlays/multi-cluster", "overlays/multi-cluster-remote", "overlays/single-cluster-keda",
        "examples/sidecar"
    ]

    typealias Object = [String: Any]

    /// Runs a command, returning its output (stdout and stderr) and exit status.
    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let directory = try TemporaryDirectory(prefix: "legation-deploy")
        defer { directory.remove() }
        let output = directory.file("output")
        let process = try ChildProcess(executable, arguments, outputFile: output)
        let status = try await process.wait(timeout: .seconds(120))
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    static func render(_ overlay: String) async throws -> (yaml: String, objects: [Object]) {
        let (status, yaml) = try await run(kubectl!, ["kustomize", root.appendingPathComponent("deploy/\(overlay)").path])
        guard status == 0 else { throw TestSupportError("kubectl kustomize \(overlay) failed: \(yaml)") }
        let objects = try Yams.load_all(yaml: yaml).compactMap { $0 as? Object }
        return (yaml, objects)
    }

    static func objects(_ all: [Object], kind: String) -> [Object] { all.filter { $0["kind"] as? String == kind } }
    static func name(_ object: Object) -> String { (object["metadata"] as? Object)?["name"] as? String ?? "" }
    static func dig(_ object: Any?, _ path: String...) -> Any? {
        var current = object
        for key in path { current = (current as? Object)?[key] }
        return current
    }

    @Test(arguments: overlays)
    func rendersAndValidatesAgainstTheKubernetesSchemas(_ overlay: String) async throws {
        let (yaml, objects) = try await Self.render(overlay)
        #expect(!objects.isEmpty)
        let validator = Self.root.appendingPathComponent(".venv-e2e/bin/kubernetes-validate").path
        try #require(FileManager.default.isExecutableFile(atPath: validator), "run scripts/install-deps.sh --e2e")
        let directory = try TemporaryDirectory(prefix: "legation-deploy")
        defer { directory.remove() }
        let file = try directory.write("rendered.yaml", yaml)
        let (status, output) = try await Self.run(validator, ["--strict", "--quiet", file])
        #expect(status == 0, "\(output)")
        #expect(!output.contains("ERROR"), "\(output)")
    }

    @Test func theIngestorMayOnlyReadEndpointSlicesAndServices() async throws {
        for overlay in Self.overlays.dropLast() {
            let objects = try await Self.render(overlay).objects
            let roles = Self.objects(objects, kind: "ClusterRole")
            #expect(roles.map(Self.name) == ["legation-ingestor"], "one ClusterRole, the ingestor's")
            let rules = try #require(roles.first?["rules"] as? [Object])
            let granted = Set(
                rules.flatMap { rule in
                    (rule["apiGroups"] as? [String] ?? []).flatMap { group in
                        (rule["resources"] as? [String] ?? []).flatMap { resource in
                            (rule["verbs"] as? [String] ?? []).map { "\(group)/\(resource)/\($0)" }
                        }
                    }
                })
            #expect(
                granted == [
                    "discovery.k8s.io/endpointslices/get", "discovery.k8s.io/endpointslices/list", "discovery.k8s.io/endpointslices/watch",
                    "/services/get", "/services/list", "/services/watch"
                ])
            #expect(rules.allSatisfy { $0["resourceNames"] == nil && $0["nonResourceURLs"] == nil })
            // Secrets: only the named ones, only get.
            let secretRules = Self.objects(objects, kind: "Role").flatMap { $0["rules"] as? [Object] ?? [] }
            #expect(secretRules.allSatisfy { ($0["verbs"] as? [String]) == ["get"] && $0["resourceNames"] != nil })
        }
    }

    @Test func theHPAScalesOnTheMetricTheServerExports() async throws {
        let objects = try await Self.render("overlays/single-cluster").objects
        let hpa = try #require(Self.objects(objects, kind: "HorizontalPodAutoscaler").first)
        let metrics = try #require(Self.dig(hpa, "spec", "metrics") as? [Object])
        let podMetric = Self.dig(metrics.first { $0["type"] as? String == "Pods" }, "pods", "metric", "name") as? String
        #expect(podMetric == XDSMetrics.streamsGauge)
        #expect(metrics.contains { Self.dig($0, "resource", "name") as? String == "cpu" }, "CPU as a backstop")
        // Scale-down waits longer than the maximum connection age.
        let window = try #require(Self.dig(hpa, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds") as? Int)
        let deployment = try #require(Self.objects(objects, kind: "Deployment").first { Self.name($0) == "legation-xds-server" })
        let config = try Self.configuration(objects, of: deployment)
        let age = try #require(XDSServerConfiguration.parse(yaml: config).grpc?.maxConnectionAgeSeconds)
        #expect(Double(window) >= age)
        // The adapter rule and the KEDA trigger name the same series.
        let rules = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/components/prometheus-adapter/config.yaml"), encoding: .utf8)
        #expect(rules.contains("as: \"\(XDSMetrics.streamsGauge)\""))
        let keda = try await Self.render("overlays/single-cluster-keda").objects
        #expect(Self.objects(keda, kind: "HorizontalPodAutoscaler").isEmpty, "KEDA owns the HPA")
        let query = (Self.dig(Self.objects(keda, kind: "ScaledObject").first, "spec", "triggers") as? [Object])?.first.flatMap {
            Self.dig($0, "metadata", "query") as? String
        }
        #expect(query?.contains(XDSMetrics.streamsGauge) == true)
    }

    /// The configuration file a Deployment mounts (its `config` volume's ConfigMap).
    static func configuration(_ objects: [Object], of deployment: Object) throws -> String {
        let volumes = try #require(Self.dig(deployment, "spec", "template", "spec", "volumes") as? [Object])
        let name = try #require(
            volumes.first { $0["name"] as? String == "config" }.flatMap { Self.dig($0, "configMap", "name") as? String })
        let map = try #require(objects.first { $0["kind"] as? String == "ConfigMap" && Self.name($0) == name })
        let data = try #require(map["data"] as? [String: String])
        return try #require(data.values.first)
    }

    @Test(arguments: overlays.dropLast())
    func containersUseRealFlagsPortsAndProbes(_ overlay: String) async throws {
        let objects = try await Self.render(overlay).objects
        let binary = Self.root.appendingPathComponent(".build/debug/legation").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build first: swift build")
        let directory = try TemporaryDirectory(prefix: "legation-deploy")
        defer { directory.remove() }
        for deployment in Self.objects(objects, kind: "Deployment") where Self.name(deployment).hasPrefix("legation-") {
            let role = Self.name(deployment).hasPrefix("legation-ingestor") ? "legation-ingestor" : "legation-xds-server"
            let config = try Self.configuration(objects, of: deployment)
            let container = try #require((Self.dig(deployment, "spec", "template", "spec", "containers") as? [Object])?.first)
            let ports = Dictionary(
                uniqueKeysWithValues: (container["ports"] as? [Object] ?? []).map { ($0["name"] as! String, $0["containerPort"] as! Int) })
            // The admin port of the configuration is the probed port, and the probes hit real paths.
            let adminAddress: String?
            if role == "legation-ingestor" {
                let settings = try IngestorConfiguration.parse(yaml: config)
                #expect(settings.problems().isEmpty, "\(settings.problems())")
                adminAddress = settings.admin?.address
            } else {
                let settings = try XDSServerConfiguration.parse(yaml: config)
                #expect(settings.problems().isEmpty, "\(settings.problems())")
                adminAddress = settings.admin?.address
                let grpc = try #require(settings.grpc?.address.flatMap(splitHostAndPort))
                #expect(ports["grpc-xds"] == grpc.port)
                let service = try #require(Self.objects(objects, kind: "Service").first { Self.name($0) == "legation-xds-server" })
                let targets = (Self.dig(service, "spec", "ports") as? [Object] ?? []).compactMap { $0["targetPort"] as? String }
                #expect(Set(targets).isSubset(of: Set(ports.keys)))
            }
            let admin = try #require(adminAddress.flatMap(splitHostAndPort))
            #expect(ports["admin"] == admin.port)
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                let path = Self.dig(container, probe, "httpGet", "path") as? String
                let port = Self.dig(container, probe, "httpGet", "port") as? String
                #expect(port == "admin", "\(role) \(probe)")
                #expect(path == (probe == "readinessProbe" ? "/readyz" : "/healthz"), "\(role) \(probe)")
            }
            // The arguments are flags the binary accepts, with this configuration.
            let configFile = try directory.write("\(Self.name(deployment)).yaml", config)
            var arguments = (container["args"] as? [String] ?? []).map { $0 == "$(POD_NAME)" ? "pod-0" : $0 }
            if let index = arguments.firstIndex(of: "--config") { arguments[index + 1] = configFile }
            let (status, output) = try await Self.run(binary, arguments + ["--check-config"])
            #expect(status == 0, "legation \(arguments.joined(separator: " ")): \(output)")
            #expect(output.contains("configuration OK"), "\(output)")
        }
    }
}
