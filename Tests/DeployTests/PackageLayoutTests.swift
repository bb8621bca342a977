import Foundation
import LegationTestSupport
import LocalProcesses
import Testing

/// The layout's dependency rules (docs/development.md, "Layout"), read from the package as SwiftPM sees
/// it. `scripts/build.sh` builds with `--explicit-target-dependency-import-check error`, so a target can
/// import only what it declares here: together they keep the core free of sockets and the roles free of
/// each other.
@Suite(.timeLimit(.minutes(2)))
struct PackageLayoutTests {
    static let root = Repository.root

    /// Target name → the names of its dependencies (targets and products alike).
    static func dependencies() async throws -> [String: Set<String>] {
        let directory = try TemporaryDirectory(prefix: "legation-layout")
        defer { directory.remove() }
        let output = directory.file("package.json")
        // A scratch path of its own: the running `swift test` holds the lock of `.build`.
        let status = try await ChildProcess(
            "/usr/bin/env", ["swift", "package", "--package-path", root.path, "--scratch-path", directory.file("scratch"), "dump-package"],
            outputFile: output
        )
        .wait(timeout: .seconds(90))
        try #require(
            status == 0, "swift package dump-package failed: \((try? String(contentsOfFile: output, encoding: .utf8))?.suffix(800) ?? "")")
        let data = try Data(contentsOf: URL(fileURLWithPath: output))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var result: [String: Set<String>] = [:]
        for target in json["targets"] as? [[String: Any]] ?? [] {
            guard let name = target["name"] as? String else { continue }
            var names = Set<String>()
            for dependency in target["dependencies"] as? [[String: Any]] ?? [] {
                for (_, value) in dependency {
                    if let list = value as? [Any], let first = list.first as? String { names.insert(first) }
                }
            }
            result[name] = names
        }
        return result
    }

    /// The protocol machines are the single source of protocol truth and take no wire or socket types:
    /// requests arrive as values built at the serving edge.
    @Test func theProtocolMachinesKnowNoWireTypes() throws {
        let directory = Self.root.appendingPathComponent("Sources/Server/Protocol")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".swift") }
        #expect(files.count >= 5)
        for file in files {
            let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let imports = text.split(separator: "\n").filter { $0.hasPrefix("import ") }.map { String($0.dropFirst("import ".count)) }
            #expect(Set(imports).isSubset(of: ["Shared", "Synchronization"]), "\(file) imports \(imports)")
        }
    }

    @Test func theCoreHasNoSocketsAndTheRolesStayApart() async throws {
        let graph = try await Self.dependencies()
        let core = try #require(graph["Shared"])
        #expect(
            core.isSubset(of: ["Crypto", "Logging", "Metrics", "SwiftProtobuf"]), "the core may not reach NIO, hiredis or HTTP: \(core)")
        let redis = try #require(graph["RedisStore"])
        #expect(redis.contains("Shared") && redis.contains("CHiredis"))
        #expect(redis.isDisjoint(with: ["Ingestor", "Server", "EnvoyAPI", "AdminHTTP"]))
        for role in ["Ingestor", "Server"] {
            let dependencies = try #require(graph[role])
            #expect(dependencies.contains("Shared"))
            #expect(
                dependencies.isDisjoint(
                    with: ["RedisStore", "CHiredis", "AdminHTTP", "LocalProcesses", "Ingestor", "Server"].filter { $0 != role }),
                "\(role) reaches the store only through Shared's protocols and knows no other role: \(dependencies)")
        }
        #expect(try #require(graph["Ingestor"]).isDisjoint(with: ["EnvoyAPI"]), "the ingestor knows nothing of Envoy")
        for leaf in ["AdminHTTP", "LocalProcesses"] {
            let dependencies = try #require(graph[leaf])
            #expect(dependencies.isDisjoint(with: ["Shared", "RedisStore", "Ingestor", "Server", "EnvoyAPI"]), "\(leaf): \(dependencies)")
        }
        // Only the binaries put the pieces together.
        for target in graph.keys where ["Ingestor", "Server", "RedisStore"].allSatisfy({ graph[target]!.contains($0) }) {
            #expect(
                ["legation", "legation-bench"].contains(target) || target.hasSuffix("Tests") || target == "LegationTestSupport", "\(target)"
            )
        }
    }

    /// Tests sit in the folders of the code they test: each folder of a `<Target>Tests` suite names a
    /// folder of `Sources/<Target>`, but for its own helpers (`Support`) and the suites that drive a
    /// running server from outside (`EndToEnd`).
    @Test func testsMirrorTheSources() throws {
        let files = FileManager.default
        let tests = Self.root.appendingPathComponent("Tests")
        var checked = 0
        for suite in try files.contentsOfDirectory(atPath: tests.path).sorted() where suite.hasSuffix("Tests") {
            let target = String(suite.dropLast("Tests".count))
            let sources = Self.root.appendingPathComponent("Sources/\(target)")
            guard files.fileExists(atPath: sources.path) else { continue }  // DeployTests, FaultTests: no target of that name
            for folder in try files.contentsOfDirectory(atPath: tests.appendingPathComponent(suite).path).sorted() {
                var isDirectory: ObjCBool = false
                guard files.fileExists(atPath: tests.appendingPathComponent("\(suite)/\(folder)").path, isDirectory: &isDirectory),
                    isDirectory.boolValue, !["Support", "EndToEnd"].contains(folder)
                else { continue }
                #expect(
                    files.fileExists(atPath: sources.appendingPathComponent(folder).path),
                    "Tests/\(suite)/\(folder) has no Sources/\(target)/\(folder) to mirror")
                checked += 1
            }
        }
        #expect(checked >= 15, "the suites have their folders")
    }
}
