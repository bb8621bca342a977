import Foundation
import LegationTestSupport
import Shared
import Testing

/// Redis records from hostile or broken writers: 10,000 mutations of real records (flipped bytes, cut
/// and repeated spans: broken varints and length prefixes) are each rejected with a `ModelError`, or
/// decode to a set that keeps every invariant. `LEGATION_FUZZ_ITERATIONS` runs more.
@Suite struct RecordFuzzTests {
    static let east = try! SourceCluster("east")

    static func seeds() throws -> [(bytes: [UInt8], service: ServiceKey)] {
        let http = try ServicePort(name: "http", port: 80)
        let grpc = try ServicePort(name: "grpc", port: 9090, appProtocol: "grpc")
        let web = try ServiceKey(namespace: "default", name: "web")
        let api = try ServiceKey(namespace: "shop", name: "api")
        let v4 = try EndpointSet(
            source: east, service: web, ports: [http],
            endpoints: (1...20).map {
                try Endpoint(
                    address: "10.0.0.\($0)", targetPorts: [8080], zone: "zone-\($0 % 3)", node: "node-\($0)",
                    targetPod: "default/web-\($0)",
                    conditions: .init(ready: $0 % 5 != 0, serving: true, terminating: $0 % 5 == 0))
            })
        let v6 = try EndpointSet(
            source: east, service: api, ports: [http, grpc],
            endpoints: (1...8).map {
                try Endpoint(address: "fd00::\($0)", targetPorts: [8080, $0 % 2 == 0 ? 0 : 9090], hostname: "api-\($0)")
            })
        let empty = try EndpointSet(source: east, service: web, ports: [http], endpoints: [])
        return [v4, v6, empty].map { (Array($0.recordBytes(epoch: 7, publishedAtUnixMilliseconds: 1_764_633_600_000)), $0.service) }
    }

    @Test func mutatedRecordsAreRejectedOrKeepEveryInvariant() async throws {
        let seeds = try Self.seeds()
        for seed in seeds {
            #expect(throws: Never.self) {
                _ = try EndpointSet.decode(recordBytes: seed.bytes, expectedSource: Self.east, expectedService: seed.service)
            }
        }
        let iterations = ProcessInfo.processInfo.environment["LEGATION_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 10_000
        var random = SplitMix64(seed: 0x5EED_2ECD)
        var rejected: [String: Int] = [:]
        var broken: [String] = []
        for iteration in 0..<iterations {
            if iteration % 256 == 0 { await Task.yield() }  // two cores: let timing-bound suites run too
            let seed = seeds[iteration % seeds.count]
            let input = ByteMutator.mutate(seed.bytes, using: &random)
            do {
                let (set, _, _) = try EndpointSet.decode(recordBytes: input, expectedSource: Self.east, expectedService: seed.service)
                // Accepted: it must be a set the model could have built, hash included.
                let rebuilt = try EndpointSet(source: set.source, service: set.service, ports: set.ports, endpoints: set.endpoints)
                let addresses = set.endpoints.map(\.address)
                if rebuilt.contentHash != set.contentHash || addresses != addresses.sorted() || Set(addresses).count != addresses.count
                    || set.endpoints.contains(where: { $0.targetPorts.count != set.ports.count })
                {
                    broken.append("#\(iteration): accepted a set that breaks an invariant")
                }
            } catch {
                rejected["\(error.code)", default: 0] += 1
            }
        }
        #expect(broken.isEmpty, "\(broken.prefix(5))")
        let total = rejected.values.reduce(0, +)
        #expect(total > iterations / 2, "most mutations must be caught (the content hash covers ports and endpoints): \(rejected)")
        print("record fuzz: \(iterations) mutated records, \(total) rejected by reason \(rejected.sorted { $0.key < $1.key })")
    }
}
