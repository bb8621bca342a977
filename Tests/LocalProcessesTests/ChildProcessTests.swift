import Foundation
import LocalProcesses
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ChildProcessTests {
    /// A child inherits its standard input, output and error and nothing else: descriptors the parent
    /// holds open without close-on-exec (a file, a socket) are not open in it. A socket a child kept
    /// open stayed open when the parent closed it, so the peer never saw the connection end.
    @Test func aChildInheritsOnlyItsStandardDescriptors() async throws {
        let file = open("/dev/null", O_RDONLY)
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer {
            close(file)
            close(socket)
        }
        try #require(file > 2 && socket > 2)
        let output = NSTemporaryDirectory() + "/child-fds-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess("/bin/sh", ["-c", "ls /proc/$$/fd"], outputFile: output)
        #expect(try await child.wait(timeout: .seconds(10)) == 0)
        let open = Set(try String(contentsOfFile: output, encoding: .utf8).split(whereSeparator: \.isWhitespace).compactMap { Int32($0) })
        #expect(open.isSuperset(of: [0, 1, 2]), "its standard descriptors: \(open.sorted())")
        #expect(!open.contains(file) && !open.contains(socket), "the parent's file \(file) and socket \(socket): \(open.sorted())")
    }
}
