import Server
import Testing

@Suite struct HeldResourcesTests {
    /// Random updates, replacements and removals (enough to grow the table several times and to empty
    /// it again) agree with a dictionary at every step: the probing and the gap closing after a removal
    /// keep every resource findable.
    @Test func behavesAsADictionaryByName() {
        var generator = SystemRandomNumberGenerator()
        let names = (0..<300).map { "default/svc-\($0):http" }
        func resource(_ name: String, _ version: Int) -> EncodedResource {
            EncodedResource(type: .endpoint, name: name, resource: Array("\(name)@\(version)".utf8))
        }
        for round in 0..<20 {
            var held = HeldResources()
            var expected: [String: EncodedResource] = [:]
            for step in 0..<2000 {
                let name = names[Int.random(in: 0..<(round % 2 == 0 ? 40 : names.count), using: &generator)]
                if Int.random(in: 0..<3, using: &generator) == 0 {
                    #expect(held.remove(name) === expected.removeValue(forKey: name))
                } else {
                    let new = resource(name, step)
                    #expect(held.update(new) === expected.updateValue(new, forKey: name))
                }
                #expect(held.count == expected.count)
                if step % 97 == 0 {
                    for name in names { #expect(held[name] === expected[name], "round \(round), step \(step), \(name)") }
                    #expect(held.dictionary == expected)
                }
            }
            for name in names { #expect(held[name] === expected[name]) }
            for name in held.names { held.remove(name) }
            #expect(held.isEmpty && held.resources.allSatisfy { _ in false })
        }
        var reserved = HeldResources()
        reserved.reserveCapacity(1000)
        for name in names { reserved.update(resource(name, 0)) }
        #expect(reserved.count == names.count)
        let all = names.map { resource($0, 1) }
        #expect(HeldResources(all) == HeldResources(all.reversed()), "the same resources, in any order")
        #expect(HeldResources(all) != HeldResources(all.dropLast()))
        #expect(HeldResources(all) != HeldResources(all.dropLast() + [resource(names.last!, 2)]))
    }
}
