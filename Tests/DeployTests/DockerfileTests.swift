import Foundation
import LegationTestSupport
import LocalProcesses
import Shared
import Testing

/// The image cannot be built here (no Docker engine), so the Dockerfile is held to what CI does: the same
/// build script, and a runtime stage with every shared library the binary needs.
@Suite struct DockerfileTests {
    static let root = Repository.root

    var dockerfile: String {
        get throws { try String(contentsOf: Self.root.appendingPathComponent("Dockerfile"), encoding: .utf8) }
    }

    @Test func buildsWithTheScriptCIUsesAndRunsAsNonRoot() throws {
        let text = try dockerfile
        #expect(text.contains("RUN ./scripts/build.sh release"))
        #expect(text.contains("COPY --from=build /src/.build/release/legation /usr/local/bin/legation"))
        #expect(text.contains("USER 65532:65532"), "non-root, the UID the manifests run as")
        let testScript = try String(contentsOf: Self.root.appendingPathComponent("scripts/test.sh"), encoding: .utf8)
        #expect(testScript.contains("scripts/build.sh\" debug"))
        let build = try String(contentsOf: Self.root.appendingPathComponent("scripts/build.sh"), encoding: .utf8)
        #expect(build.contains("swift build -c release --product legation --static-swift-stdlib"))
    }

    @Test func theRuntimeStageHasEverySharedLibraryTheBinaryNeeds() async throws {
        let binary = Self.root.appendingPathComponent(".build/debug/legation").path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build first")
        let directory = try TemporaryDirectory(prefix: "legation-ldd")
        defer { directory.remove() }
        let output = directory.file("ldd")
        let status = try await ChildProcess("/usr/bin/ldd", [binary], outputFile: output).wait()
        #expect(status == 0)
        let libraries = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init)?.trimmingCharacters(in: .whitespaces) }
        // Linked statically in the release build (--static-swift-stdlib), or part of debian:bookworm-slim.
        let staticSwift = ["libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime"]
        let inBase = ["linux-vdso", "libc.so", "libm.so", "libstdc++", "libgcc_s", "libz.so", "/lib64/ld-linux", "ld-linux"]
        let rest = libraries.filter { library in !(staticSwift + inBase).contains { library.hasPrefix($0) } }
        #expect(rest == ["libhiredis.so.0.14"], "install these in the runtime stage: \(rest)")
        #expect(try dockerfile.contains("libhiredis0.14"))
    }
}
