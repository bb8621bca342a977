import Server
import Shared
import Testing

@Suite struct EndpointIndexTests {
    let east = try! SourceCluster("east")
    let west = try! SourceCluster("west")
    let web = try! ServiceKey(namespace: "default", name: "web")
    let http = try! ServicePort(name: "http", port: 80)
    let admin = try! ServicePort(name: "admin", port: 9000)

    func set(
        _ source: SourceCluster, _ addresses: [String], ports: [ServicePort]? = nil, targets: [UInt16] = [8080, 9001],
        conditions: Endpoint.Conditions = .ready
    ) -> EndpointSet {
        let ports = ports ?? [http, admin]
        let endpoints = addresses.map {
            try! Endpoint(address: $0, targetPorts: Array(targets.prefix(ports.count)), zone: "\(source)-a", conditions: conditions)
        }
        return try! EndpointSet(source: source, service: web, ports: ports, endpoints: endpoints)
    }

    @Test func clustersAreTheUnionOfEverySourceExportingTheService() {
        var index = EndpointIndex()
        let httpKey = ClusterKey(service: web, port: http)
        #expect(httpKey.name == "default/web:http")
        #expect(index.apply([.upsert(set(east, ["10.0.0.1", "10.0.0.2"]))], from: east) == [httpKey, ClusterKey(service: web, port: admin)])
        _ = index.apply([.upsert(set(west, ["10.1.0.1"]))], from: west)
        let members = index.members(of: httpKey)
        #expect(members.map(\.endpoint.address) == ["10.0.0.1", "10.0.0.2", "10.1.0.1"])
        #expect(members.map(\.source) == [east, east, west])
        #expect(members.allSatisfy { $0.targetPort == 8080 })
        #expect(index.sources(of: web) == [east, west])
    }

    @Test func onlyChangedClustersAreReportedAndRemovalDrainsOneSource() {
        var index = EndpointIndex()
        _ = index.apply([.upsert(set(east, ["10.0.0.1"])), .upsert(set(west, ["10.1.0.1"]))], from: east)
        _ = index.apply([.upsert(set(west, ["10.1.0.1"]))], from: west)
        #expect(index.apply([.upsert(set(west, ["10.1.0.1"]))], from: west).isEmpty, "same content: nothing changed")
        let onlyHTTP = set(west, ["10.1.0.1"], ports: [http])
        #expect(index.apply([.upsert(onlyHTTP)], from: west).count == 2, "admin disappears from west, http is rebuilt")
        #expect(index.apply([.remove(web)], from: west) == [ClusterKey(service: web, port: http)])
        #expect(index.members(of: ClusterKey(service: web, port: http)).map(\.source) == [east])
        _ = index.apply([.remove(web)], from: east)
        #expect(index.clusters.isEmpty)
    }

    @Test func healthFollowsEndpointSliceConditions() {
        #expect(EndpointHealth.of(.ready) == .healthy)
        #expect(EndpointHealth.of(.init(ready: false, serving: true, terminating: true)) == .draining)
        #expect(EndpointHealth.of(.init(ready: false, serving: false, terminating: true)) == nil)
        #expect(EndpointHealth.of(.init(ready: false, serving: false, terminating: false), keepUnready: true) == .unhealthy)
    }
}
