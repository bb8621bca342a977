import Server
import Testing

/// `grpc.tls.nodeIdentity` patterns, without sockets (XDSTLSTests serves through them).
@Suite struct NodeIdentityRuleTests {
    let spiffe = ["spiffe://mesh.example/ns/shop/sa/checkout"]

    @Test func nodeStandsForTheNodeIdLiterally() throws {
        let rule = try NodeIdentityRule("spiffe://mesh.example/ns/*/sa/{node}")
        #expect(rule.allows(nodeID: "checkout", identities: spiffe))
        #expect(!rule.allows(nodeID: "payments", identities: spiffe))
        #expect(!rule.allows(nodeID: "", identities: spiffe), "an empty node id names nothing")
        #expect(!rule.allows(nodeID: "check*", identities: spiffe), "the node id is not a pattern")
        #expect(!rule.allows(nodeID: "checkout", identities: ["spiffe://other.example/ns/shop/sa/checkout"]))
        #expect(!rule.allows(nodeID: "checkout", identities: []), "no certificate identity, no service")
    }

    @Test func aWildcardIsOneSegmentOrLabel() throws {
        let rule = try NodeIdentityRule("spiffe://mesh.example/ns/*/sa/*")
        #expect(rule.allows(nodeID: "anything", identities: spiffe))
        #expect(!rule.allows(nodeID: "anything", identities: ["spiffe://mesh.example/ns/a/b/sa/c"]), "* does not cross /")
        #expect(!rule.allows(nodeID: "anything", identities: ["spiffe://mesh.example/ns//sa/c"]), "* is one or more")
        let dns = try NodeIdentityRule("{node}.*.sidecars.example")
        #expect(dns.allows(nodeID: "web-1", identities: ["web-1.east.sidecars.example"]))
        #expect(!dns.allows(nodeID: "web-1", identities: ["web-1.east.west.sidecars.example"]), "* does not cross .")
        #expect(dns.allows(nodeID: "web-1", identities: ["ignored.example", "web-1.east.sidecars.example"]), "any of the names")
    }

    @Test func badPatternsAreRefusedSayingWhy() {
        for pattern in ["", "a**b", "{node}/{node}", "{nodes}", "x{y}"] {
            #expect(throws: IdentityPatternError.self, "\(pattern)") { try NodeIdentityRule(pattern) }
        }
    }
}
