import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, for servers that tests run (redis-server, envoy, ...).
///
/// Not Foundation's `Process`: its `waitUntilExit` spins a run loop on the calling thread, which on
/// Swift's two-thread cooperative pool here deadlocks the test run. Waiting happens on a thread of its
/// own; `kill()` never blocks the pool.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`; output goes to `outputFile` (or /dev/null).
    public init(_ executable: String, _ arguments: [String], outputFile: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let output = outputFile ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A process group of its own, so a test runner's signals do not reach it and it can be killed whole.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard status == 0 else { throw TestSupportError("cannot start \(executable): \(String(cString: strerror(status)))") }
        self.pid = pid
    }

    deinit { kill() }

    /// True until the process exited (reaped without blocking).
    public var isRunning: Bool {
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

    /// Sends `signal` to the process group; SIGKILL (the default) also reaps it.
    public func kill(_ signal: Int32 = SIGKILL) {
        guard isRunning else { return }
        Glibc.kill(-pid, signal)
        if signal == SIGKILL {
            lock.lock()
            defer { lock.unlock() }
            var status: Int32 = 0
            if exitStatus == nil, waitpid(pid, &status, 0) == pid { exitStatus = status }
        }
    }

    /// Waits (polling, never blocking the pool) until the process exits; its exit status.
    public func wait(timeout: Duration = .seconds(60)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            guard ContinuousClock.now < deadline else { throw TestSupportError("process \(pid) still running after \(timeout)") }
            try await Task.sleep(for: .milliseconds(5))
        }
        let status = lock.withLock { exitStatus ?? 0 }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}
