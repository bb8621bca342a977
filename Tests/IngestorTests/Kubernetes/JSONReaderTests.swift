import Foundation
import LegationTestSupport
import Testing

@testable import Ingestor

/// The byte-level reader against Foundation's `JSONDecoder`: on every Kubernetes fixture and on
/// thousands of mutations of them, both read the same value or both reject the input. Plus the hostile
/// shapes a reader must survive: deep nesting, huge strings, bad UTF-8, every escape.
@Suite struct JSONReaderTests {
    /// What reading one input came to with both readers.
    struct Comparison {
        /// The reader's error, when it rejected the input.
        var readerError: String?
        /// How the readings differ, when they do.
        var mismatch: String?
    }

    struct Target: Sendable {
        var name: String
        var compare: @Sendable ([UInt8]) -> Comparison
    }

    static func compare<T: Equatable>(_ fast: () throws -> T, _ foundation: () throws -> T) -> Comparison {
        let ours: Result<T, any Error> = Result { try fast() }
        let theirs: Result<T, any Error> = Result { try foundation() }
        switch (ours, theirs) {
        case (.success(let a), .success(let b)):
            return Comparison(
                readerError: nil,
                mismatch: a == b ? nil : "reader \(String(reflecting: a).prefix(300)) vs Foundation \(String(reflecting: b).prefix(300))")
        case (.failure(let error), .failure): return Comparison(readerError: "\(error)", mismatch: nil)
        case (.failure(let error), .success):
            // Stricter on purpose, on grammar only: a member it reads appearing twice; a string anywhere
            // that is not UTF-8, holds a raw control character or a bad escape; trailing commas, numbers
            // like `2.` or `64-3`, stray brackets. Foundation lets these pass in values it does not decode
            // (and trailing commas anywhere); RFC 8259 and Go's encoding/json, the API server's, do not.
            let grammar = [
                "appears twice", "not UTF-8", "control character", "escape", "surrogate", "found '}'", "found ']'",
                "invalid number", "unexpected", "expected ',' or"
            ]
            let stricter = grammar.contains { "\(error)".contains($0) }
            return Comparison(readerError: "\(error)", mismatch: stricter ? nil : "reader rejected (\(error)), Foundation accepted")
        case (.success, .failure(let error)):
            return Comparison(readerError: nil, mismatch: "reader accepted, Foundation rejected (\(error))")
        }
    }

    static func target<T: KubernetesReadable & Decodable & Equatable>(_ type: T.Type) -> Target {
        Target(name: "\(T.self)") { bytes in compare({ try T(json: bytes) }, { try JSONDecoder().decode(T.self, from: Data(bytes)) }) }
    }

    static let watchEvent = Target(name: "WatchEvent<EndpointSliceObject>") { bytes in
        compare(
            { try WatchEvent<EndpointSliceObject>(json: bytes) },
            { try JSONDecoder().decode(WatchEvent<EndpointSliceObject>.self, from: Data(bytes)) })
    }

    /// A watch event read with a memo that holds what an earlier event (the seed, unmutated) was read
    /// as: reused endpoints must read exactly as fresh ones.
    static func watchEventAfter(_ seed: [UInt8]) -> Target {
        Target(name: "WatchEvent<EndpointSliceObject> with a memo") { bytes in
            let memo = ReadMemo()
            _ = try? WatchEvent<EndpointSliceObject>(json: seed, memo: memo)
            return compare(
                { try WatchEvent<EndpointSliceObject>(json: bytes, memo: memo) },
                { try JSONDecoder().decode(WatchEvent<EndpointSliceObject>.self, from: Data(bytes)) })
        }
    }

    struct FoundationListPage<Item: Decodable>: Decodable {
        struct Metadata: Decodable {
            var resourceVersion: String?
            var `continue`: String?
        }
        var metadata: Metadata
        var items: [Item]?
    }

    struct PageValue<Item: Equatable>: Equatable {
        var resourceVersion: String?
        var `continue`: String?
        var items: [Item]
    }

    static func listTarget<T: KubernetesReadable & Decodable & Equatable>(_ type: T.Type) -> Target {
        Target(name: "list of \(T.self)") { bytes in
            compare(
                {
                    let page = try ListPage<T>(json: bytes)
                    return PageValue(resourceVersion: page.resourceVersion, continue: page.continue, items: page.items)
                },
                {
                    let page = try JSONDecoder().decode(FoundationListPage<T>.self, from: Data(bytes))
                    return PageValue(
                        resourceVersion: page.metadata.resourceVersion, continue: page.metadata.continue, items: page.items ?? [])
                })
        }
    }

    /// Every fixture each reader applies to, as (target, bytes) seeds.
    static func seeds() throws -> [(Target, [UInt8])] {
        try seedsAndWhetherValid().map { ($0.0, $0.1) }
    }

    /// Seeds, with whether the reader must accept each (a ServiceAccount in a watch fixture is not an
    /// EndpointSlice).
    static func seedsAndWhetherValid() throws -> [(Target, [UInt8], Bool)] {
        let files = try FileManager.default.contentsOfDirectory(atPath: KubeFixtures.directory.path).sorted()
        var seeds: [(Target, [UInt8], Bool)] = []
        for file in files where file.hasSuffix(".json") || file.hasSuffix(".jsonl") {
            let bytes = Array(try KubeFixtures.data(file))
            if file.hasPrefix("endpointslice-") { seeds.append((target(EndpointSliceObject.self), bytes, true)) }
            if file.hasPrefix("service-") { seeds.append((target(ServiceObject.self), bytes, true)) }
            if file.hasPrefix("status-") { seeds.append((target(StatusObject.self), bytes, true)) }
            if file.hasPrefix("endpointslicelist-") { seeds.append((listTarget(EndpointSliceObject.self), bytes, true)) }
            if file.hasPrefix("servicelist-") { seeds.append((listTarget(ServiceObject.self), bytes, true)) }
            if file.hasPrefix("watch-") && file.hasSuffix(".jsonl") {
                for line in bytes.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                    let valid = !String(decoding: line, as: UTF8.self).contains(#""kind":"ServiceAccount""#)
                    seeds.append((watchEvent, Array(line), valid))
                    seeds.append((watchEventAfter(Array(line)), Array(line), valid))
                }
            }
        }
        return seeds
    }

    @Test func everyFixtureReadsAsFoundationReadsIt() throws {
        let seeds = try Self.seedsAndWhetherValid()
        #expect(seeds.count >= 25)
        for (target, bytes, valid) in seeds {
            let comparison = target.compare(bytes)
            #expect(!valid || comparison.readerError == nil, "\(target.name) rejected a fixture: \(comparison.readerError ?? "")")
            #expect(comparison.mismatch == nil, "\(target.name): \(comparison.mismatch ?? "")")
        }
    }

    /// 10,000 mutated fixtures (byte flips to JSON's structural bytes, deletions, duplications,
    /// truncations, invalid UTF-8), seeded so a failure repeats. `LEGATION_FUZZ_ITERATIONS` runs more.
    @Test func mutatedInputsReadAsFoundationReadsThem() async throws {
        let seeds = try Self.seeds()
        let iterations = ProcessInfo.processInfo.environment["LEGATION_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 10_000
        var random = SplitMix64(seed: 0x1E6A_7104)
        var rejected = 0
        var mismatches: [String] = []
        for iteration in 0..<iterations {
            if iteration % 256 == 0 { await Task.yield() }  // two cores: let timing-bound suites run too
            let (target, seed) = seeds[iteration % seeds.count]
            let input = ByteMutator.mutate(seed, using: &random)
            let comparison = target.compare(input)
            if comparison.readerError != nil { rejected += 1 }
            if let mismatch = comparison.mismatch, mismatches.count < 8 {
                mismatches.append(
                    "\(target.name) #\(iteration): \(mismatch); input around the first change: \(ByteMutator.firstChange(from: seed, to: input))"
                )
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        #expect(
            rejected > iterations / 4 && rejected < iterations,
            "mutations should both break and spare inputs: \(rejected) of \(iterations) rejected")
    }

    @Test func hostileShapesAreErrorsNotCrashes() throws {
        // 1,000,000 nested arrays: an error at the depth limit, no stack overflow (both where read and where skipped).
        let deep = Array(repeating: UInt8(ascii: "["), count: 1_000_000)
        #expect(throws: JSONReader.Failure.self) { try EndpointSliceObject(json: deep) }
        let deepSkipped = Array(#"{"metadata":{"name":"a"},"addressType":"IPv4","x":"#.utf8) + deep
        let error = #expect(throws: JSONReader.Failure.self) { try EndpointSliceObject(json: deepSkipped) }
        #expect(error?.message.contains("nested deeper") == true)

        // A 10 MB string in a skipped field is read through; in a kept one it becomes the value.
        let huge = String(repeating: "x", count: 10 << 20)
        let slice = try EndpointSliceObject(
            json: Array(#"{"metadata":{"name":"a","uid":"\#(huge)"},"addressType":"IPv4","endpoints":null}"#.utf8))
        #expect(slice.metadata.name == "a" && slice.endpoints == nil)

        // Invalid UTF-8, a member read twice, bad escapes, lone surrogates, trailing garbage, numbers.
        for bad in [
            [UInt8](#"{"metadata":{"name":""#.utf8) + [0xFF, 0xFE] + Array(#""},"addressType":"IPv4"}"#.utf8),
            Array(#"{"metadata":{"name":"a","name":"b"},"addressType":"IPv4"}"#.utf8),
            Array(#"{"metadata":{"name":"a\qb"},"addressType":"IPv4"}"#.utf8),
            Array(#"{"metadata":{"name":"\ud800"},"addressType":"IPv4"}"#.utf8),
            Array(#"{"metadata":{"name":"a"},"addressType":"IPv4"} x"#.utf8),
            Array(#"{"metadata":{"name":"a"},"addressType":"IPv4","ports":[{"port":08}]}"#.utf8),
            Array(#"{"metadata":{"name":"a"},"addressType":"IPv4","ports":[{"port":1e400000}]}"#.utf8),
            Array(#"{"metadata":{"name":"a"},"addressType":"IPv4",}"#.utf8),
            Array(#"{"metadata":{"name":"a"},"addressType":"IPv4""#.utf8)
        ] {
            #expect(throws: JSONReader.Failure.self, "\(String(decoding: bad, as: UTF8.self))") { try EndpointSliceObject(json: bad) }
        }

        // Every escape, and a surrogate pair, decode as JSON says.
        let escaped = try EndpointSliceObject(
            json: Array(#"{"metadata":{"name":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"},"addressType":"IPv4"}"#.utf8))
        #expect(escaped.metadata.name == "\"\\/\u{8}\u{c}\n\r\té😀")
    }

    @Test func aMemoReusesUnchangedEndpointsAndReadsChangedOnes() throws {
        let memo = ReadMemo()
        let stream = try KubeFixtures.data("watch-endpointslice-sequence-assembled.jsonl").split(separator: UInt8(ascii: "\n")).map(
            Array.init)
        for line in stream where !line.isEmpty {
            let fresh = try WatchEvent<EndpointSliceObject>(json: line)
            let remembered = try WatchEvent<EndpointSliceObject>(json: line, memo: memo)
            #expect(fresh == remembered)
        }
        #expect(memo.slices.count >= 1)
        // The same slice with one endpoint's conditions changed: that endpoint is read anew.
        let before =
            #"{"type":"MODIFIED","object":{"metadata":{"name":"s","namespace":"n"},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true}},{"addresses":["10.0.0.2"],"conditions":{"ready":true}}]}}"#
        let after = before.replacingOccurrences(
            of: #"["10.0.0.2"],"conditions":{"ready":true}"#, with: #"["10.0.0.2"],"conditions":{"ready":false}"#)
        let sliceMemo = ReadMemo()
        _ = try WatchEvent<EndpointSliceObject>(json: Array(before.utf8), memo: sliceMemo)
        guard case .modified(let slice) = try WatchEvent<EndpointSliceObject>(json: Array(after.utf8), memo: sliceMemo) else {
            Issue.record("not modified")
            return
        }
        #expect(slice.endpoints?.map { $0.conditions?.ready } == [true, false])
    }

    /// Versions of one slice with endpoints removed, inserted, duplicated byte for byte, swapped and
    /// changed: read with the memo (reuse at the same position or a step or two off, bytes compared)
    /// each equals the same bytes read afresh.
    @Test func aMemoReadsEveryVersionAsAFreshReadDoes() throws {
        var generator = SystemRandomNumberGenerator()
        func endpoint(_ n: Int, ready: Bool) -> String {
            #"{"addresses":["10.1.\#(n / 250).\#(n % 250 + 1)"],"conditions":{"ready":\#(ready)},"nodeName":"node-\#(n % 7)","targetRef":{"kind":"Pod","name":"pod-\#(n)"}}"#
        }
        var endpoints = (0..<20).map { endpoint($0, ready: true) }
        var created = 20
        let memo = ReadMemo()
        for version in 0..<300 {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0 where !endpoints.isEmpty: endpoints.remove(at: Int.random(in: 0..<endpoints.count, using: &generator))
            case 1:
                endpoints.insert(
                    endpoint(created, ready: Bool.random(using: &generator)), at: Int.random(in: 0...endpoints.count, using: &generator))
                created += 1
            case 2 where !endpoints.isEmpty:  // the same bytes twice
                endpoints.append(endpoints[Int.random(in: 0..<endpoints.count, using: &generator)])
            case 3 where endpoints.count > 1:
                endpoints.swapAt(
                    Int.random(in: 0..<endpoints.count, using: &generator), Int.random(in: 0..<endpoints.count, using: &generator))
            default:
                guard !endpoints.isEmpty else { continue }
                let index = Int.random(in: 0..<endpoints.count, using: &generator)
                endpoints[index] =
                    endpoints[index].contains(#""ready":true"#)
                    ? endpoints[index].replacingOccurrences(of: #""ready":true"#, with: #""ready":false"#)
                    : endpoints[index].replacingOccurrences(of: #""ready":false"#, with: #""ready":true"#)
            }
            let event = Array(
                #"{"type":"MODIFIED","object":{"metadata":{"name":"s","namespace":"n","resourceVersion":"\#(version)"},"addressType":"IPv4","endpoints":[\#(endpoints.joined(separator: ","))]}}"#
                    .utf8)
            guard case .modified(let fresh) = try WatchEvent<EndpointSliceObject>(json: event),
                case .modified(let remembered) = try WatchEvent<EndpointSliceObject>(json: event, memo: memo)
            else {
                Issue.record("not modified")
                return
            }
            #expect(fresh == remembered, "version \(version)")
        }
        #expect(memo.slices.count == 1)
    }

    /// A page large enough to be read on several cores reads as Foundation reads it; a broken item in
    /// the middle fails the page at that item's byte, and a non-object item is read (and rejected) in place.
    @Test func aLargeListReadInParallelReadsAsFoundationReadsIt() throws {
        let slice = String(decoding: try KubeFixtures.data("endpointslice-full.json"), as: UTF8.self)
        let items = (0..<600).map { slice.replacingOccurrences(of: #""nameValue""#, with: #""nameValue-\#($0)""#) }
        let header = #"{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"9"},"items":["#
        func page(_ items: [String]) -> [UInt8] { Array((header + items.joined(separator: ",\n ") + "]}").utf8) }
        let comparison = Self.listTarget(EndpointSliceObject.self).compare(page(items))
        #expect(comparison.readerError == nil && comparison.mismatch == nil, "\(comparison)")
        #expect(try ListPage<EndpointSliceObject>(json: page(items)).items.count == 600)

        var broken = items
        broken[417] = broken[417].replacingOccurrences(of: #""addressType""#, with: #""addressType" "#) + "x"
        let bytes = page(broken)
        #expect(throws: JSONReader.Failure.self) { try ListPage<EndpointSliceObject>(json: bytes) }
        do {
            _ = try ListPage<EndpointSliceObject>(json: bytes)
            Issue.record("a page with a broken item was read")
        } catch {
            let itemStart = (header + broken[..<417].joined(separator: ",\n ") + ",\n ").utf8.count
            #expect(error.offset > itemStart && error.offset < itemStart + broken[417].utf8.count, "\(error) should point into item 417")
        }
        var notObject = items
        notObject[300] = "42"
        #expect(throws: JSONReader.Failure.self) { try ListPage<EndpointSliceObject>(json: page(notObject)) }
        #expect(Self.listTarget(EndpointSliceObject.self).compare(page(notObject)).mismatch == nil)
    }

    @Test func aWatchEventWithItsObjectBeforeItsTypeReads() throws {
        let event = try WatchEvent<EndpointSliceObject>(
            json: Array(#"{"object":{"metadata":{"name":"s","resourceVersion":"9"},"addressType":"IPv4"},"type":"DELETED"}"#.utf8))
        guard case .deleted(let slice) = event else {
            Issue.record("read \(event)")
            return
        }
        #expect(slice.metadata.resourceVersion == "9")
        let bookmark = try WatchEvent<EndpointSliceObject>(
            json: Array(
                #"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}}"#
                    .utf8))
        guard case .bookmark("12", true) = bookmark else {
            Issue.record("read \(bookmark)")
            return
        }
    }
}
