import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn`, for the peers that tests and the demo run (redis-server,
/// envoy, openssl).
///
/// Not Foundation's `Process`: its `waitUntilExit` spins a run loop on the calling thread, which on
/// Swift's two-thread cooperative pool deadlocks, and its children inherit the spawning thread's blocked
/// signals (an Envoy started by it ignores SIGTERM and Ctrl-C). Here the child starts with no signal
/// blocked and default dispositions; waiting polls; `kill()` never blocks the pool.
package final class ChildProcess: @unchecked Sendable {
    package struct SpawnError: Error, CustomStringConvertible {
        package var description: String
    }

    package let pid: pid_t
    private let lock = NSLock()
    private let ownProcessGroup: Bool
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`; output goes to `outputFile` (or /dev/null).
    /// - Parameter ownProcessGroup: true (tests): signals to the parent's group (a test runner's) do not
    ///   reach it, and `kill` ends its whole group. false (the demo): Ctrl-C reaches it with the parent.
    package init(_ executable: String, _ arguments: [String], outputFile: String? = nil, ownProcessGroup: Bool = true) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let output = outputFile ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // Nothing else is inherited. Without this a child kept a copy of every descriptor the parent
        // had open without close-on-exec (SwiftNIO's sockets among them): a connection the parent
        // closed stayed open in the child, so its peer got no FIN, reused it for its next request, and
        // waited for an answer no one would send (a fault test's ingestor: 30 s, then "no response").
        Self.closeInheritedDescriptors(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if ownProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        self.ownProcessGroup = ownProcessGroup
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else { throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
    }

    deinit { kill() }

    /// `posix_spawn_file_actions_addclosefrom_np(actions, 3)` (glibc 2.34 and later; Swift's Glibc module
    /// does not declare it), else a close action for each descriptor from 3 open now.
    private static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np"),
            unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3) == 0
        {
            return
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for descriptor in open.compactMap(Int32.init) where descriptor >= 3 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
    }

    /// True until the process exited (reaped without blocking).
    package var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = status
            return false
        }
        return true
    }

    /// Sends `signal` to the process (its group, when it has its own); SIGKILL (the default) also reaps it.
    package func kill(_ signal: Int32 = SIGKILL) {
        guard isRunning else { return }
        Glibc.kill(ownProcessGroup ? -pid : pid, signal)
        if signal == SIGKILL {
            lock.lock()
            defer { lock.unlock() }
            var status: Int32 = 0
            if exitStatus == nil, waitpid(pid, &status, 0) == pid { exitStatus = status }
        }
    }

    /// Waits (polling, never blocking the pool) until the process exits; its exit status.
    package func wait(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            guard ContinuousClock.now < deadline else { throw SpawnError(description: "process \(pid) still running after \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        let status = lock.withLock { exitStatus ?? 0 }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
