import EnvoyAPI
import Foundation
import LegationTestSupport
import Server
import Shared
import SwiftProtobuf
import Testing

/// xDS requests from broken or hostile clients, fed to both stream state machines between snapshot
/// changes: 10,000 requests each (random types, names, nonces, versions, NACKs, and mutated encodings
/// of real requests). None may crash a machine; a request a machine refuses ends only that stream; and
/// whatever a machine sends names only resources that exist, with nonces that only go up.
/// `LEGATION_FUZZ_ITERATIONS` runs more.
@Suite struct RequestFuzzTests {
    typealias F = XDSFixture
    static let types = ResourceType.allCases.map(\.typeURL)
    static let badTypes = ["", "type.googleapis.com/envoy.config.cluster.v3.Nope", String(repeating: "t", count: 5000)]

    struct Generator {
        var random: SplitMix64
        var nonces: [String] = []
        var versions: [String] = []

        mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }

        mutating func names(from snapshot: ResourceSnapshot) -> [String] {
            let existing = ResourceType.allCases.flatMap { snapshot.all($0).keys }.sorted()
            let pool = existing + ["*", "default/nope:http", "\u{0}\u{FFFF}"]
            var names = (0..<Int.random(in: 0...6, using: &random)).map { _ in pick(pool) }
            if chance(2) { names.append(String(repeating: "n", count: 2000)) }  // over the name limit: refused
            if chance(2) { names.append("") }  // empty: refused
            return names
        }

        /// A type URL: now and then one no server serves (refused).
        mutating func typeURL() -> String {
            chance(4) ? pick(RequestFuzzTests.badTypes) : pick(RequestFuzzTests.types)
        }

        mutating func nonce() -> String {
            chance(60) && !nonces.isEmpty ? pick(nonces) : pick(["", "0", "999999", "-1", "x"])
        }

        mutating func version() -> String {
            chance(50) && !versions.isEmpty ? pick(versions) : pick(["", "0000000000000000", "garbage"])
        }
    }

    static func bytesOrMutated<M: SwiftProtobuf.Message>(_ message: M, _ generator: inout Generator) -> M? {
        guard generator.chance(30), let bytes: [UInt8] = try? message.serializedBytes() else { return message }
        return try? M(serializedBytes: ByteMutator.mutate(bytes, using: &generator.random))
    }

    /// Changes the endpoints (and now and then the clusters) so pushes happen between requests.
    static func churn(_ fixture: inout XDSFixture, _ generator: inout Generator) {
        let services = ["web", "api", "db", "cache"]
        let service = generator.pick(services)
        if generator.chance(15) {
            fixture.publish(removing: [service])
        } else {
            fixture.publish([
                F.set(
                    service, (1...Int.random(in: 1...4, using: &generator.random)).map { "10.0.\(services.firstIndex(of: service)!).\($0)" }
                )
            ])
        }
    }

    static func check(
        names: [String], type: ResourceType, nonce: String, snapshot: ResourceSnapshot, lastNonce: inout Int, problems: inout [String]
    ) {
        if let value = Int(nonce), value > lastNonce { lastNonce = value } else { problems.append("nonce \(nonce) after \(lastNonce)") }
        for name in names where snapshot.resource(type, named: name) == nil {
            problems.append("sent \(type.shortName) \(name.prefix(40)), which does not exist")
        }
    }

    @Test func stateOfTheWorldMachinesSurviveRandomRequests() async {
        let iterations = ProcessInfo.processInfo.environment["LEGATION_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 10_000
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.1.1", "10.0.1.2"])])
        var generator = Generator(random: SplitMix64(seed: 0x5070_F022))
        var machine = SotWStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        var lastNonce = 0
        var (responses, refusals, streams) = (0, 0, 1)
        var problems: [String] = []
        var reasons: [String: Int] = [:]
        func record(_ sent: [OutboundResponse]) {
            for response in sent {
                responses += 1
                generator.nonces.append(response.nonce)
                generator.versions.append(response.versionInfo)
                Self.check(
                    names: response.resources.map(\.name), type: response.type, nonce: response.nonce, snapshot: fixture.snapshot,
                    lastNonce: &lastNonce, problems: &problems)
            }
        }
        for iteration in 0..<iterations {
            if iteration % 256 == 0 { await Task.yield() }  // two cores: let timing-bound suites run too
            if generator.chance(20) {
                Self.churn(&fixture, &generator)
                record(machine.onSnapshot(fixture.snapshot).responses)
            }
            var message = request(
                nil, names: generator.names(from: fixture.snapshot), version: generator.version(), nonce: generator.nonce(),
                nack: generator.chance(10) ? "rejected" : nil, node: generator.chance(90) ? "sidecar-\(streams)" : nil)
            message.typeURL = generator.typeURL()
            guard let input = Self.bytesOrMutated(message, &generator) else { continue }
            switch machine.onRequest(input, snapshot: fixture.snapshot) {
            case .fail(let error):
                refusals += 1
                reasons[String(error.message.prefix(16)), default: 0] += 1
                streams += 1
                machine = SotWStreamStateMachine(allowedTypes: Set(ResourceType.allCases))  // the stream ends; the client reconnects
                lastNonce = 0
                generator.nonces = []
            case .send(let sent): record(sent)
            case .none: break
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(
            responses > iterations / 20 && refusals > 0,
            "the fuzz should reach both pushes and refusals: \(responses) responses, \(refusals) refusals")
        print(
            "SotW request fuzz: \(iterations) requests over \(streams) streams; \(responses) responses, \(refusals) refused: \(reasons.sorted { $0.value > $1.value })"
        )
    }

    @Test func deltaMachinesSurviveRandomRequests() async {
        let iterations = ProcessInfo.processInfo.environment["LEGATION_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 10_000
        var fixture = XDSFixture()
        fixture.publish([F.set("web", ["10.0.0.1"]), F.set("api", ["10.0.1.1", "10.0.1.2"])])
        var generator = Generator(random: SplitMix64(seed: 0xDE17_A022))
        var machine = DeltaStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
        var lastNonce = 0
        var (responses, refusals, streams) = (0, 0, 1)
        var problems: [String] = []
        var reasons: [String: Int] = [:]
        func record(_ sent: [OutboundDeltaResponse]) {
            for response in sent {
                responses += 1
                generator.nonces.append(response.nonce)
                generator.versions += response.resources.map(\.version)
                Self.check(
                    names: response.resources.map(\.name), type: response.type, nonce: response.nonce, snapshot: fixture.snapshot,
                    lastNonce: &lastNonce, problems: &problems)
            }
        }
        for iteration in 0..<iterations {
            if iteration % 256 == 0 { await Task.yield() }  // two cores: let timing-bound suites run too
            if generator.chance(20) {
                Self.churn(&fixture, &generator)
                if case .send(let sent) = machine.onSnapshot(fixture.snapshot) { record(sent) }
            }
            // Drawn in this order (the seed's sequence), then built.
            let typeURL = generator.typeURL()
            let node = generator.chance(90) ? "sidecar-\(streams)" : nil
            let subscribe = generator.names(from: fixture.snapshot)
            let unsubscribe = generator.chance(20) ? generator.names(from: fixture.snapshot) : []
            var initial: [String: String] = [:]
            if generator.chance(15) {
                for name in generator.names(from: fixture.snapshot) { initial[name] = generator.version() }
            }
            var message = deltaRequest(
                nil, subscribe: subscribe, unsubscribe: unsubscribe, initial: initial, nonce: generator.nonce(),
                nack: generator.chance(10) ? "rejected" : nil, node: node)
            message.typeURL = typeURL
            guard let input = Self.bytesOrMutated(message, &generator) else { continue }
            switch machine.onRequest(input, snapshot: fixture.snapshot) {
            case .fail(let error):
                refusals += 1
                reasons[String(error.message.prefix(16)), default: 0] += 1
                streams += 1
                machine = DeltaStreamStateMachine(allowedTypes: Set(ResourceType.allCases))
                lastNonce = 0
                generator.nonces = []
            case .send(let sent): record(sent)
            case .none: break
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(
            responses > iterations / 20 && refusals > 0,
            "the fuzz should reach both pushes and refusals: \(responses) responses, \(refusals) refused: \(reasons.sorted { $0.value > $1.value })"
        )
        print(
            "delta request fuzz: \(iterations) requests over \(streams) streams; \(responses) responses, \(refusals) refused: \(reasons.sorted { $0.value > $1.value })"
        )
    }
}
