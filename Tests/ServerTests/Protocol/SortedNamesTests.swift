import Server
import Testing

@Suite struct SortedNamesTests {
    /// Random name lists (duplicates, any order, sorted or not) and random unions, subtractions and
    /// removals agree with a `Set` at every step, and the names stay sorted and distinct.
    @Test func behavesAsASetInNameOrder() {
        var generator = SystemRandomNumberGenerator()
        let pool = (0..<60).map { "default/svc-\($0):http" } + ["*", "", "é", "e\u{301}"]
        func draw() -> [String] {
            let names = (0..<Int.random(in: 0..<40, using: &generator)).map { _ in pool.randomElement(using: &generator)! }
            return Bool.random(using: &generator) ? names.sorted() : names
        }
        for _ in 0..<300 {
            let first = draw()
            var names = SortedNames(first)
            var expected = Set(first)
            for _ in 0..<10 {
                let other = draw()
                switch Int.random(in: 0..<4, using: &generator) {
                case 0:
                    names.formUnion(other)
                    expected.formUnion(other)
                case 1:
                    names.subtract(other)
                    expected.subtract(other)
                case 2:
                    #expect(Set(names.subtracting(SortedNames(other))) == expected.subtracting(other))
                    #expect(names.subtracting(SortedNames(other)) == names.subtracting(SortedNames(other)).sorted())
                default:
                    let name = pool.randomElement(using: &generator)!
                    names = names.removing(name)
                    expected.remove(name)
                }
                #expect(Set(names) == expected && names.count == expected.count)
                #expect(Array(names) == expected.sorted(), "sorted, each once")
                for name in pool { #expect(names.contains(name) == expected.contains(name)) }
            }
        }
    }

    /// A cursor answers as `contains` does, for names asked in increasing order (a snapshot's names,
    /// walked) and for names asked out of order; `members` keeps what a cursor says is here.
    @Test func aCursorAnswersAsContainsInAnyOrder() {
        var generator = SystemRandomNumberGenerator()
        let pool = (0..<80).map { "default/svc-\($0):http" }.sorted()
        for round in 0..<200 {
            let names = SortedNames(pool.filter { _ in Bool.random(using: &generator) })
            var asked = pool.filter { _ in Int.random(in: 0..<3, using: &generator) > 0 }
            if round % 3 == 0 { asked.shuffle(using: &generator) }
            var cursor = names.cursor()
            for name in asked { #expect(cursor.contains(name) == names.contains(name), "round \(round), \(name)") }
            let members = names.members(of: asked, everyName: false).map { [$0.name, asked[$0.offset]] }
            #expect(members == asked.filter(names.contains).map { [$0, $0] }, "round \(round): the names, at their offsets")
            #expect(names.members(of: asked, everyName: true).map(\.name) == asked)
        }
    }

    /// Names that come sorted and distinct are kept as the very array they came in (no second copy
    /// beside the request's own names).
    @Test func sortedNamesShareTheirArray() {
        let names = (0..<100).map { "default/svc-\($0 + 100):http" }
        let kept = SortedNames(names)
        #expect(kept.names.withUnsafeBufferPointer { $0.baseAddress } == names.withUnsafeBufferPointer { $0.baseAddress })
        let unsorted = SortedNames(names.reversed())
        #expect(unsorted == kept)
        #expect(SortedNames(names + names) == kept, "duplicates dropped")
    }
}
