import Server
import Shared
import Testing

@Suite struct ResourceTableTests {
    typealias F = XDSFixture

    /// A snapshot lists each type's names in order (streams walk them instead of sorting), kept as
    /// services come and go and unchanged when only their endpoints change.
    @Test func snapshotsListEachTypesNamesInOrder() throws {
        var fixture = F()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.0.2"]), F.set("db", ["10.0.0.3"])])
        let all = ["default/api:http", "default/db:http", "default/web:http"]
        #expect(fixture.snapshot.names(.cluster) == all)
        #expect(fixture.snapshot.names(.endpoint) == all)
        #expect(fixture.snapshot.names(.listener).isEmpty)

        fixture.publish(removing: ["api"])
        #expect(fixture.snapshot.names(.cluster) == ["default/db:http", "default/web:http"])
        fixture.publish([F.set("cache", ["10.0.0.4"])])
        #expect(fixture.snapshot.names(.endpoint) == ["default/cache:http", "default/db:http", "default/web:http"])
        fixture.publish([F.set("web", ["10.0.0.9"])])
        #expect(fixture.snapshot.names(.endpoint) == ["default/cache:http", "default/db:http", "default/web:http"])
        for type in [ResourceType.cluster, .endpoint] {
            #expect(fixture.snapshot.names(type) == fixture.snapshot.all(type).keys.sorted())
        }
    }
}
