import Testing

@testable import Server

@Suite struct KnownVersionsTests {
    /// Random sends, reported versions and removals of the same names agree with a dictionary of
    /// versions at every step, and each set returns the entry it replaced, whichever side held it.
    @Test func behavesAsADictionaryOfVersions() {
        var generator = SystemRandomNumberGenerator()
        let names = (0..<120).map { "default/svc-\($0):http" }
        for _ in 0..<10 {
            var known = KnownVersions()
            var expected: [String: String] = [:]
            for step in 0..<1500 {
                let name = names[Int.random(in: 0..<names.count, using: &generator)]
                let entry: KnownVersions.Entry? =
                    switch Int.random(in: 0..<3, using: &generator) {
                    case 0: nil
                    case 1: .reported("reported-\(step)")
                    default: .sent(EncodedResource(type: .endpoint, name: name, resource: Array("\(name)@\(step)".utf8)))
                    }
                let old = known.set(name, entry)
                #expect(old?.version == expected[name], "step \(step): the entry replaced")
                expected[name] = entry?.version
                #expect(known[name]?.version == expected[name])
                #expect(known.count == expected.count)
            }
            #expect(known.versions == expected)
            #expect(Set(known.names) == Set(expected.keys) && known.names.count == expected.count)
        }
    }

    /// A sent resource is compared by identity first, then by version; a reported version by version.
    @Test func anEntryIsTheVersionOfAResourceWithTheSameVersion() {
        let resource = EncodedResource(type: .cluster, name: "default/web:http", resource: [1, 2, 3])
        let same = EncodedResource(type: .cluster, name: "default/web:http", resource: [1, 2, 3])
        let other = EncodedResource(type: .cluster, name: "default/web:http", resource: [4])
        #expect(KnownVersions.Entry.sent(resource).isVersion(of: resource))
        #expect(KnownVersions.Entry.sent(resource).isVersion(of: same))
        #expect(!KnownVersions.Entry.sent(resource).isVersion(of: other))
        #expect(KnownVersions.Entry.reported(resource.version).isVersion(of: same))
        #expect(!KnownVersions.Entry.reported("stale").isVersion(of: resource))
    }
}
