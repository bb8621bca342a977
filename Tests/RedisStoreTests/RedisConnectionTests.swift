import LegationTestSupport
import Logging
import NIOCore
import RedisStore
import Shared
import Testing

/// The Redis client against a real redis-server: TLS, ACL users, databases, timeouts, reconnects.
@Suite(.timeLimit(.minutes(1)))
struct RedisConnectionTests {
    @Test func tlsVerifiesTheServerAgainstTheConfiguredCA() async throws {
        var options = RedisServer.Options()
        options.tls = try await TestCertificates(in: TemporaryDirectory(prefix: "legation-pki"))
        let server = try await RedisServer(options)

        let good = try await RedisConnection.connect(try server.configuration())
        #expect(try await good.send(["PING"]) == .simpleString("PONG"))
        good.close()

        var wrongCA = try server.configuration()
        wrongCA.tls?.caFile = options.tls!.otherCACertificate
        await #expect(throws: StoreError.self) { try await RedisConnection.connect(wrongCA) }

        var skipVerify = wrongCA
        skipVerify.tls?.insecureSkipVerify = true
        let insecure = try await RedisConnection.connect(skipVerify)
        #expect(try await insecure.send(["PING"]) == .simpleString("PONG"))
        insecure.close()
    }

    @Test func mutualTLSNeedsAClientCertificate() async throws {
        var options = RedisServer.Options()
        options.tls = try await TestCertificates(in: TemporaryDirectory(prefix: "legation-pki"))
        options.requireClientCertificates = true
        let server = try await RedisServer(options)

        await #expect(throws: StoreError.self) { try await RedisConnection.connect(try server.configuration()) }
        let connection = try await RedisConnection.connect(try server.configuration(clientCertificate: true))
        #expect(try await connection.send(["SET", "k", "v"]) == .simpleString("OK"))
        connection.close()

        var missingKey = try server.configuration(clientCertificate: true)
        missingKey.tls?.keyFile = nil
        do {
            _ = try await RedisConnection.connect(missingKey)
            Issue.record("a certificate without its key was accepted")
        } catch let error as StoreError {
            #expect(error.code == .configuration)
        }
    }

    @Test func aclUsersAuthenticateAndAreHeldToTheirPermissions() async throws {
        var options = RedisServer.Options()
        options.aclUsers = [
            "user default off",
            "user ingestor on >ingest-secret ~legation:* +@all",
            "user reader on >read-secret ~legation:* +@read +ping +client"
        ]
        let server = try await RedisServer(options)

        let ingestor = try await RedisConnection.connect(try server.configuration(user: "ingestor", password: "ingest-secret"))
        #expect(try await ingestor.send(["SET", "legation:v1:x", "1"]) == .simpleString("OK"))
        ingestor.close()

        let reader = try await RedisConnection.connect(try server.configuration(user: "reader", password: "read-secret"))
        #expect(try await reader.send(["GET", "legation:v1:x"]).string == "1")
        let refused = try await reader.send(["SET", "legation:v1:x", "2"])
        guard case .error(let message) = refused else {
            Issue.record("reader could write: \(refused)")
            return
        }
        #expect(message.hasPrefix("NOPERM"))
        reader.close()

        for (user, password) in [("ingestor", "wrong"), ("nobody", "x")] {
            do {
                _ = try await RedisConnection.connect(try server.configuration(user: user, password: password))
                Issue.record("\(user) with a wrong password was let in")
            } catch let error as StoreError {
                #expect(error.code == .authentication)
            }
        }
        // The default user is off: no credentials, no connection.
        do {
            _ = try await RedisConnection.connect(try server.configuration())
            Issue.record("anonymous connection accepted")
        } catch let error as StoreError {
            #expect(error.code == .authentication)
        }
    }

    @Test func passwordOnlyAuthAndDatabaseIndex() async throws {
        var options = RedisServer.Options()
        options.defaultPassword = "s3cret"
        let server = try await RedisServer(options)
        var configuration = try RedisConfiguration(url: server.url(password: "s3cret", database: 3))
        configuration.connectTimeout = .seconds(2)
        let connection = try await RedisConnection.connect(configuration)
        _ = try await connection.send(["SET", "where", "three"])
        connection.close()

        let zero = try await RedisConnection.connect(try RedisConfiguration(url: server.url(password: "s3cret", database: 0)))
        #expect(try await zero.send(["GET", "where"]) == .null)
        _ = try await zero.send(["SELECT", "3"])
        #expect(try await zero.send(["GET", "where"]).string == "three")
        zero.close()
    }

    @Test func aCommandWithoutAnswerTimesOutAndClosesTheConnection() async throws {
        let server = try await RedisServer()
        let configuration = try server.configuration()
        let pauser = try await RedisConnection.connect(configuration)
        let victim = try await RedisConnection.connect(configuration)
        // Paused far longer than the timeout, so a loaded machine cannot blur the two.
        _ = try await pauser.send(["CLIENT", "PAUSE", "6000", "ALL"])
        let started = ContinuousClock.now
        do {
            _ = try await victim.send(["GET", "k"], timeout: .milliseconds(200))
            Issue.record("no timeout")
        } catch let error as StoreError {
            #expect(error.code == .timeout)
        }
        #expect(ContinuousClock.now - started < .seconds(4), "the timeout, not the pause's end, answered")
        #expect(await eventually(within: .seconds(3)) { !victim.isActive })
        pauser.close()
    }

    @Test func theClientReconnectsAfterRedisComesBackAndBacksOffMeanwhile() async throws {
        let server = try await RedisServer()
        let client = RedisClient(try server.configuration(), logger: .quiet())
        #expect(try await client.send(["PING"]) == .simpleString("PONG"))

        server.kill()
        var failures = 0
        for _ in 0..<5 {
            do { _ = try await client.send(["PING"]) } catch let error as StoreError {
                #expect(error.code == .unavailable)
                failures += 1
            }
        }
        #expect(failures == 5)

        try await server.restart()
        var answered = false
        let deadline = ContinuousClock.now + .seconds(5)
        while !answered, ContinuousClock.now < deadline {
            answered = (try? await client.send(["PING"])) == .simpleString("PONG")
            if !answered { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(answered)
    }

    @Test func pipelinedCommandsAnswerInOrder() async throws {
        let server = try await RedisServer()
        let connection = try await RedisConnection.connect(try server.configuration())
        let commands: [[RedisArgument]] = (0..<500).map { _ in ["INCR", "counter"] }
        let replies = try await connection.pipeline(commands)
        #expect(replies.map(\.integer) == (1...500).map { Int64($0) })
        let binary = (0...255).map { UInt8($0) }
        _ = try await connection.send(["SET", "binary", RedisArgument(binary)])
        #expect(try await connection.send(["GET", "binary"]).bytes == binary)
        connection.close()
    }

    /// A command on a connection that closed under it fails at once: it must never wait forever.
    @Test func aCommandOnAClosedConnectionFailsInsteadOfHanging() async throws {
        let server = try await RedisServer()
        let connection = try await RedisConnection.connect(try server.configuration())
        server.kill()
        let started = ContinuousClock.now
        while connection.isActive, ContinuousClock.now - started < .seconds(5) { try await Task.sleep(for: .milliseconds(5)) }
        do {
            _ = try await connection.send(["PING"], timeout: .seconds(30))
            Issue.record("a closed connection answered")
        } catch let error as StoreError {
            #expect(error.code == .unavailable)
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func anUnreachableServerIsUnavailableNotACrash() async throws {
        let port = try freeLoopbackPort()
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(port)")
        configuration.connectTimeout = .milliseconds(500)
        do {
            _ = try await RedisConnection.connect(configuration)
            Issue.record("connected to nothing")
        } catch let error as StoreError {
            #expect(error.code == .unavailable)
        }
    }
}
