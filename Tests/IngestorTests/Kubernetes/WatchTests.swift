import Foundation
import LegationTestSupport
import Shared
import Testing

@testable import Ingestor

/// Watch streams from the real fixtures: framing in any chunking, event decoding, the state machine.
@Suite struct WatchTests {
    func frame(_ bytes: [UInt8], chunk: Int) throws -> [[UInt8]] {
        var framer = JSONObjectFramer()
        var objects: [[UInt8]] = []
        for start in stride(from: 0, to: bytes.count, by: chunk) {
            objects += try framer.feed(bytes[start..<min(start + chunk, bytes.count)])
        }
        #expect(framer.pendingBytes == 0)
        return objects
    }

    @Test func framingDoesNotDependOnChunkBoundariesOrNewlines() throws {
        let stream = Array(try KubeFixtures.data("watch-endpointslice-sequence-assembled.jsonl"))
        let lines = stream.split(separator: UInt8(ascii: "\n")).count
        for chunk in [1, 7, 100, 4096, stream.count] {
            let objects = try frame(stream, chunk: chunk)
            #expect(objects.count == lines, "chunk \(chunk)")
        }
        // Pretty-printed objects (as in the API docs), braces and quotes inside strings.
        let pretty = Array(
            """
            {
              "type": "ADDED",
              "object": {"metadata": {"name": "a}b\\"{", "resourceVersion": "1"}}
            }
            {"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"2"}}}
            """.utf8)
        #expect(try frame(pretty, chunk: 3).count == 2)
    }

    /// The framer's index of nested objects, in any chunking: every object nested in an event is listed,
    /// with its true end; a framer that does not index frames the same bytes; and a list page read with
    /// the index reads as it does without.
    @Test func theFramersObjectIndexIsTrueInAnyChunking() throws {
        let stream =
            Array(try KubeFixtures.data("watch-endpointslice-sequence-assembled.jsonl"))
            + Array(
                #"{"type":"MODIFIED","object":{"kind":"EndpointSlice","metadata":{"name":"s","namespace":"n","resourceVersion":"9","labels":{"a":"}{\"x"}},"addressType":"IPv4","endpoints":[{"addresses":["10.0.0.1"],"conditions":{}},{"addresses":["10.0.0.2"],"hostname":"h\\"}],"ports":[]}}"#
                    .utf8)
            + [UInt8(ascii: "\n")]
        func nestedObjects(_ value: Any) -> Int {
            switch value {
            case let object as [String: Any]: 1 + object.values.reduce(0) { $0 + nestedObjects($1) }
            case let array as [Any]: array.reduce(0) { $0 + nestedObjects($1) }
            default: 0
            }
        }
        for chunk in [1, 5, 64, 4096] {
            var framer = JSONObjectFramer(indexing: true)
            var plainFramer = JSONObjectFramer()
            var framed: [JSONObjectFramer.Framed] = []
            var plain: [[UInt8]] = []
            for start in stride(from: 0, to: stream.count, by: chunk) {
                framed += try framer.feedIndexed(stream[start..<min(start + chunk, stream.count)])
                plain += try plainFramer.feed(stream[start..<min(start + chunk, stream.count)])
            }
            #expect(framed.count == stream.split(separator: UInt8(ascii: "\n")).count)
            #expect(framed.map(\.bytes) == plain)
            for object in framed {
                let tree = try JSONSerialization.jsonObject(with: Data(object.bytes))
                var found = 0
                for (offset, byte) in object.bytes.enumerated() where byte == UInt8(ascii: "{") {
                    guard let end = object.objectEnds.end(ofObjectAt: offset) else { continue }
                    found += 1
                    #expect(object.bytes[end - 1] == UInt8(ascii: "}"))
                    #expect(throws: Never.self) {
                        try JSONReader.parse(object.bytes[offset..<end]) { (reader: inout JSONReader) throws(JSONReader.Failure) in
                            try reader.skipValue()
                        }
                    }
                }
                #expect(found == nestedObjects(tree) - 1, "every nested object, the event itself not")
            }
        }
        let items = stream.split(separator: UInt8(ascii: "\n")).compactMap { line -> String? in
            guard let event = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], event["type"] as? String != "ERROR",
                let object = event["object"] as? [String: Any], object["addressType"] != nil
            else { return nil }
            return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let page = Array(
            (#"{"kind":"EndpointSliceList","metadata":{"resourceVersion":"5"},"items":["# + items.joined(separator: ",") + "]}").utf8)
        var framer = JSONObjectFramer(indexing: true)
        let indexed = try #require(try framer.feedIndexed(page).first)
        #expect(
            try ListPage<EndpointSliceObject>(json: page).items
                == ListPage<EndpointSliceObject>(json: indexed.bytes, objectEnds: indexed.objectEnds).items)
    }

    /// The eight-bytes-at-a-time scan against a byte-at-a-time reference, on random documents full of
    /// what it must not be fooled by (quotes, backslashes and brackets inside strings, escapes across
    /// word and chunk boundaries, deep nesting), in random chunks, with white space between objects.
    @Test func framingMatchesAByteAtATimeReference() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"ab{}[]"\/:, "#.unicodeScalars).map(String.init) + ["é", "\n", "\u{1}"]
        func value(_ depth: Int) -> Any {
            switch Int.random(in: 0..<(depth > 6 ? 3 : 6), using: &generator) {
            case 0: return (0..<Int.random(in: 0..<20, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }.joined()
            case 1: return Int.random(in: -1000...1000, using: &generator)
            case 2: return Bool.random(using: &generator)
            case 3, 4:
                return Dictionary(
                    uniqueKeysWithValues: (0..<Int.random(in: 0..<5, using: &generator)).map {
                        ("k\($0)\(alphabet.randomElement(using: &generator)!)", value(depth + 1))
                    })
            default: return (0..<Int.random(in: 0..<5, using: &generator)).map { _ in value(depth + 1) }
            }
        }
        /// Where each top-level object ends, one byte at a time (the framer's rules, written plainly).
        func reference(_ bytes: [UInt8]) -> [[UInt8]] {
            var objects: [[UInt8]] = []
            var depth = 0
            var inString = false
            var escaped = false
            var start = 0
            for (index, byte) in bytes.enumerated() {
                if inString {
                    if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
                    continue
                }
                switch byte {
                case 0x22: inString = true
                case 0x7B, 0x5B:
                    if depth == 0 { start = index }
                    depth += 1
                case 0x7D, 0x5D:
                    depth -= 1
                    if depth == 0 { objects.append(Array(bytes[start...index])) }
                default: break
                }
            }
            return objects
        }
        for _ in 0..<200 {
            var stream: [UInt8] = []
            for _ in 0..<Int.random(in: 1..<6, using: &generator) {
                let object = ["type": "MODIFIED", "object": value(0)] as [String: Any]
                stream += Array(
                    try JSONSerialization.data(withJSONObject: object, options: Bool.random(using: &generator) ? [.prettyPrinted] : []))
                stream += Array([" ", "\n", "\r\n", ""].randomElement(using: &generator)!.utf8)
            }
            for indexing in [false, true] {
                var framer = JSONObjectFramer(indexing: indexing)
                var framed: [[UInt8]] = []
                var start = 0
                while start < stream.count {
                    let end = min(stream.count, start + Int.random(in: 1...300, using: &generator))
                    framed += try framer.feed(stream[start..<end])
                    start = end
                }
                let expected = reference(stream)
                #expect(
                    framed == expected,
                    "indexing \(indexing): \(framed.count) objects framed, \(expected.count) in \(String(decoding: stream.prefix(400), as: UTF8.self))"
                )
                #expect(framer.pendingBytes == 0)
            }
        }
    }

    @Test func garbageAndOversizedEventsAreErrorsWithBoundedMemory() throws {
        var framer = JSONObjectFramer()
        #expect(throws: JSONObjectFramer.Failure.self) { try framer.feed(Array("<html>".utf8)) }

        var small = JSONObjectFramer(maximumObjectBytes: 1 << 20)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 64 << 10)
        _ = try small.feed(Array(#"{"type":"ADDED","object":{"x":""#.utf8))
        var failed = false
        for _ in 0..<160 where !failed {  // a 10 MB event
            do { _ = try small.feed(chunk) } catch { failed = true }
            #expect(small.pendingBytes <= (1 << 20) + chunk.count + 64)
        }
        #expect(failed)
    }

    @Test func aRealPodTerminationStreamDrivesTheAggregator() throws {
        let stream = Array(try KubeFixtures.data("watch-endpointslice-sequence-assembled.jsonl"))
        var framer = JSONObjectFramer()
        var machine = WatchStateMachine<EndpointSliceObject>()
        _ = machine.listSucceeded(resourceVersion: "700")
        var aggregator = EndpointSliceAggregator(source: try SourceCluster("kind"))
        _ = aggregator.upsert(service: try KubeFixtures.decode(ServiceObject.self, "service-graceful-term.json"))
        var seen: [Endpoint.Conditions?] = []
        var actions: [String] = []
        // As the source runs it: the machine's action says what to do with each event's object.
        for object in try framer.feed(stream) {
            switch machine.received(try WatchEvent<EndpointSliceObject>(json: object)) {
            case .upsert(let slice):
                actions.append("upsert")
                _ = aggregator.upsert(slice: slice)
                seen.append(aggregator.sets.values.first?.endpoints.first?.conditions)
            case .delete(let slice):
                actions.append("delete")
                _ = aggregator.delete(slice: slice)
                seen.append(aggregator.sets.values.first?.endpoints.first?.conditions)
            case .none: actions.append("none")
            case .list: actions.append("list")
            case .watch: actions.append("watch")
            }
        }
        // ADDED (ready) → MODIFIED (terminating) → MODIFIED (no endpoints) → DELETED → BOOKMARK → ERROR 410
        #expect(actions == ["upsert", "upsert", "upsert", "delete", "none", "list"])
        #expect(seen == [.ready, .init(ready: false, serving: true, terminating: true), nil, nil])
        #expect(aggregator.sets.values.first?.endpoints.isEmpty == true, "the service stays, empty")
        #expect(machine.relists == 1)
        #expect(machine.phase == .listing)
    }

    @Test func expiredVersionsRelistAndBookmarksMoveTheVersion() throws {
        var machine = WatchStateMachine<EndpointSliceObject>()
        #expect(machine.start() == .list(after: .zero))
        #expect(machine.listSucceeded(resourceVersion: "657887") == .watch(resourceVersion: "657887", after: .zero))

        let golden = Array(try KubeFixtures.data("watch-initial-events-client-go-golden.jsonl"))
        var framer = JSONObjectFramer()
        let objects = try framer.feed(golden)
        let bookmark = try JSONDecoder().decode(WatchEvent<EndpointSliceObject>.self, from: Data(objects[1]))
        guard case .bookmark("964", true) = bookmark else {
            Issue.record("\(bookmark)")
            return
        }
        #expect(machine.received(bookmark) == .none)
        #expect(machine.resourceVersion == "964")

        let expired = try JSONDecoder().decode(
            WatchEvent<EndpointSliceObject>.self, from: try KubeFixtures.data("watch-error-410-captured.jsonl"))
        #expect(machine.received(expired) == .list(after: .zero))
        #expect(machine.relists == 1)
        #expect(machine.phase == .listing)

        // 410 as an HTTP status with a Status body.
        _ = machine.listSucceeded(resourceVersion: "1")
        let status = try KubeFixtures.decode(StatusObject.self, "status-410-expired-watch.json")
        #expect(machine.watchFailed(status: status) == .list(after: .zero))
    }

    @Test func otherErrorsBackOffAndResumeFromTheLastVersion() throws {
        var machine = WatchStateMachine<EndpointSliceObject>(initialBackoff: .milliseconds(100), maximumBackoff: .seconds(1))
        _ = machine.listSucceeded(resourceVersion: "10")
        let forbidden = try KubeFixtures.decode(StatusObject.self, "status-403-forbidden-list-endpoints-captured.json")
        var delays: [Duration] = []
        for _ in 0..<6 {
            guard case .watch("10", let delay) = machine.watchFailed(status: forbidden) else {
                Issue.record("no rewatch")
                return
            }
            delays.append(delay)
        }
        #expect(delays[0] >= .milliseconds(50) && delays[0] < .milliseconds(150))
        #expect(delays.last! <= .milliseconds(1500))
        #expect(machine.consecutiveFailures == 6)
        let event = WatchEvent<EndpointSliceObject>.bookmark(resourceVersion: "11", initialEventsEnd: false)
        _ = machine.received(event)
        #expect(machine.consecutiveFailures == 0)
        #expect(machine.watchEnded() == .watch(resourceVersion: "11", after: .zero), "a closed watch resumes where it was")
    }

    @Test func malformedEventsAreDecodingErrorsNotCrashes() {
        for text in [
            #"{"type":"EXPLODED","object":{}}"#, #"{"object":{}}"#, #"{"type":"BOOKMARK","object":{"metadata":{}}}"#,
            #"{"type":"ADDED","object":{"metadata":{"name":5}}}"#
        ] {
            #expect(throws: (any Error).self) {
                try JSONDecoder().decode(WatchEvent<EndpointSliceObject>.self, from: Data(text.utf8))
            }
        }
    }
}
