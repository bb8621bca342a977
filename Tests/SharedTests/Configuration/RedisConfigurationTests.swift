import Foundation
import Shared
import Testing

@Suite struct RedisConfigurationTests {
    @Test func parsesEveryPartOfAURL() throws {
        let plain = try RedisConfiguration(url: "redis://redis.legation.svc:6380/2")
        #expect(plain.host == "redis.legation.svc")
        #expect(plain.port == 6380)
        #expect(plain.database == 2)
        #expect(plain.tls == nil)
        #expect(plain.username == nil && plain.password == nil)

        let acl = try RedisConfiguration(url: "rediss://xds-server:p%40ss%3Aword@10.0.0.5")
        #expect(acl.tls != nil)
        #expect(acl.username == "xds-server")
        #expect(acl.password == "p@ss:word")
        #expect(acl.port == 6379)
        #expect(acl.redactedURL == "rediss://xds-server:***@10.0.0.5:6379/0")

        let passwordOnly = try RedisConfiguration(url: "redis://secret@[::1]:7000")
        #expect(passwordOnly.host == "::1")
        #expect(passwordOnly.port == 7000)
        #expect(passwordOnly.username == nil)
        #expect(passwordOnly.password == "secret")
        #expect(!passwordOnly.redactedURL.contains("secret"))
    }

    @Test(arguments: [
        "http://localhost", "redis://", "redis://host:0", "redis://host:99999", "redis://host:port",
        "redis://host/db", "redis://host/-1", "redis://[::1", "localhost:6379"
    ])
    func refusesBadURLsWithAClearError(_ url: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.code == .configuration)
            #expect(!error.message.isEmpty)
        }
    }

    @Test func errorsNeverEchoThePassword() {
        do {
            _ = try RedisConfiguration(url: "redis://user:hunter2@host:notaport")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
    }
}

@Suite struct RedisSettingsTests {
    @Test func secretsComeFromAFileOrTheEnvironmentAndTimeoutsApply() throws {
        let file = NSTemporaryDirectory() + "legation-password-\(UInt32.random(in: 0...UInt32.max))"
        try "from-file\n".write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        var settings = RedisSettings()
        settings.url = "redis://user:from-url@127.0.0.1:6390/1"
        settings.timeoutSeconds = 0.5
        #expect(try settings.configuration(clientName: "t", environment: [:]).password == "from-url")
        #expect(try settings.configuration(clientName: "t", environment: ["LEGATION_REDIS_PASSWORD": "from-env"]).password == "from-env")
        settings.passwordFile = file
        let configured = try settings.configuration(clientName: "t", environment: ["LEGATION_REDIS_PASSWORD": "from-env"])
        #expect(configured.password == "from-file")
        #expect(configured.commandTimeout == .milliseconds(500))

        settings.passwordFile = file + "-missing"
        #expect(throws: StoreError.self) { try settings.configuration(clientName: "t", environment: [:]) }
        #expect(throws: StoreError.self) { try RedisSettings().configuration(clientName: "t", environment: [:]) }
        #expect(try RedisSettings().configuration(clientName: "t", environment: ["LEGATION_REDIS_URL": "redis://h"]).host == "h")
        var slow = RedisSettings()
        slow.url = "redis://h"
        slow.timeoutSeconds = 900
        #expect(slow.problems().count == 1)
    }
}
