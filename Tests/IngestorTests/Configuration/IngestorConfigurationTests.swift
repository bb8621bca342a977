import Foundation
import LegationTestSupport
import Testing

@testable import Ingestor

@Suite struct IngestorConfigurationTests {
    @Test func theShippedExampleIsValid() throws {
        let url = Repository.root.appendingPathComponent("deploy/examples/ingestor.yaml")
        let settings = try IngestorConfiguration.parse(yaml: try String(contentsOf: url, encoding: .utf8))
        #expect(settings.problems() == [])
        #expect(settings.kubernetes?.inCluster == true)
        #expect(settings.lease?.ttlSeconds == 15)
    }

    @Test func everyProblemIsNamed() throws {
        let settings = try IngestorConfiguration.parse(
            yaml: """
                source: East_1
                kubernetes: {labelSelector: "env in prod", namespaces: [Bad], pageSize: 0, eksCluster: x}
                file: {path: /x}
                redis: {url: "http://nope", timeoutSeconds: 0}
                lease: {ttlSeconds: 0, holder: "a b"}
                admin: {address: "nowhere"}
                log: {level: loud, format: xml}
                """)
        let problems = settings.problems().joined(separator: "\n")
        for expected in [
            "DNS label", "not both", "redis.url", "timeoutSeconds", "lease.ttlSeconds", "lease.holder", "admin.address", "log.level",
            "log.format"
        ] {
            #expect(problems.contains(expected), "\(expected) in \(problems)")
        }
        #expect(throws: (any Error).self) { try IngestorConfiguration.parse(yaml: "source: [unclosed") }
        #expect(throws: (any Error).self) { try IngestorConfiguration.parse(yaml: "lease: {ttlSeconds: fifteen}") }
        #expect(IngestorConfiguration().problems().count >= 2)
    }
}
