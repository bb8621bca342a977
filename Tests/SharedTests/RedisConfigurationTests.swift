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
        "redis://host/db", "redis://host/-1", "redis://[::1", "localhost:6379",
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
