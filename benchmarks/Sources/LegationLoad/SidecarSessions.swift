import EnvoyAPI
import Server

/// What a simulated sidecar sends on its ADS stream and how it answers each response, apart from
/// what carries the stream (grpc-swift-2's client or `WireSidecarStream`).
extension SimulatedSidecar {
    /// One state-of-the-world ADS stream's client logic, whatever carries it: the first requests, then
    /// for each response the requests it calls for (the ACK, and EDS subscriptions when clusters change).
    /// Used by one stream at a time.
    final class SotWSession: @unchecked Sendable {
        private let sidecar: SimulatedSidecar
        private let node: Envoy_Config_Core_V3_Node
        private var subscribed: [String] = []
        private var acceptedEndpoints = ""
        /// The resource names of the last request, encoded (field 3 of a DiscoveryRequest), and the array
        /// they came from: every EDS ACK repeats them, and encoding them again was a tenth of the
        /// harness's CPU during an initial sync.
        private var encodedNames: (names: [String], bytes: [UInt8])?

        init(_ sidecar: SimulatedSidecar, node: Envoy_Config_Core_V3_Node) {
            self.sidecar = sidecar
            self.node = node
        }

        func start() -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            let (held, versions) = sidecar.state.withLock { (Array($0.clusters).sorted(), $0.sotwVersions) }
            subscribed = held
            acceptedEndpoints = versions[ResourceType.endpoint.typeURL] ?? ""
            var first = Envoy_Service_Discovery_V3_DiscoveryRequest()
            first.node = node
            first.typeURL = ResourceType.cluster.typeURL
            first.versionInfo = versions[ResourceType.cluster.typeURL] ?? ""
            guard !held.isEmpty else { return [first] }
            // A reconnect: ask again for the assignments held, with the version they came in.
            var eds = Envoy_Service_Discovery_V3_DiscoveryRequest()
            eds.typeURL = ResourceType.endpoint.typeURL
            eds.resourceNames = held
            eds.versionInfo = versions[ResourceType.endpoint.typeURL] ?? ""
            return [first, eds]
        }

        func handle(_ bytes: [UInt8], at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            handle(ResponseSummary(reading: bytes, delta: false, keepValues: sidecar.trackContent), at: now)
        }

        /// `requests` as bytes, a request's many resource names as encoded before when they are the same
        /// array (fields may come in any order: a parser appends repeated fields wherever they are).
        func encode(_ requests: [Envoy_Service_Discovery_V3_DiscoveryRequest]) -> [[UInt8]] {
            requests.compactMap { request in
                guard request.resourceNames.count > 8 else { return try? request.serializedBytes() }
                if encodedNames?.names != request.resourceNames {
                    var names = Envoy_Service_Discovery_V3_DiscoveryRequest()
                    names.resourceNames = request.resourceNames
                    guard let bytes = try? names.serializedBytes() as [UInt8] else { return nil }
                    encodedNames = (request.resourceNames, bytes)
                }
                var rest = request
                rest.resourceNames = []
                guard let head = try? rest.serializedBytes() as [UInt8], let names = encodedNames?.bytes else { return nil }
                return head + names
            }
        }

        func handle(_ response: ResponseSummary, at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DiscoveryRequest] {
            let (version, nonce, typeURL, resources) = (response.version, response.nonce, response.typeURL, response.resources)
            var ack = Envoy_Service_Discovery_V3_DiscoveryRequest()
            ack.typeURL = typeURL
            ack.versionInfo = version
            ack.responseNonce = nonce
            sidecar.state.withLock { $0.sotwVersions[typeURL] = version }
            if typeURL == ResourceType.cluster.typeURL {
                let clusters = resources.map(\.name).sorted()
                sidecar.state.withLock {
                    $0.clustersRemoved += $0.clusters.subtracting(clusters).count
                    $0.clusters = Set(clusters)
                    $0.bytes += response.bytes
                    $0.responses += 1
                }
                guard clusters != subscribed else { return [ack] }
                subscribed = clusters
                var eds = Envoy_Service_Discovery_V3_DiscoveryRequest()
                eds.typeURL = ResourceType.endpoint.typeURL
                eds.resourceNames = clusters
                return [ack, eds]
            }
            sidecar.record(resources, at: now, bytes: response.bytes)
            ack.resourceNames = subscribed
            if sidecar.injectNack() {
                // A NACK names the last version accepted, with the reason.
                ack.versionInfo = acceptedEndpoints
                ack.errorDetail = .with {
                    $0.code = 3
                    $0.message = "injected NACK (legation-bench --nack-every)"
                }
                sidecar.state.withLock { [acceptedEndpoints] in $0.sotwVersions[typeURL] = acceptedEndpoints }
            } else {
                acceptedEndpoints = version
            }
            return [ack]
        }
    }

    /// One delta ADS stream's client logic, whatever carries it (see `SotWSession`).
    final class DeltaSession: @unchecked Sendable {
        private let sidecar: SimulatedSidecar
        private let node: Envoy_Config_Core_V3_Node
        private var subscribed: Set<String> = []

        init(_ sidecar: SimulatedSidecar, node: Envoy_Config_Core_V3_Node) {
            self.sidecar = sidecar
            self.node = node
        }

        func start() -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            let versions = sidecar.state.withLock { $0.deltaVersions }
            var first = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            first.node = node
            first.typeURL = ResourceType.cluster.typeURL
            first.resourceNamesSubscribe = ["*"]
            first.initialResourceVersions = versions[ResourceType.cluster.typeURL] ?? [:]
            subscribed = Set(versions[ResourceType.endpoint.typeURL]?.keys ?? [:].keys)
            guard let held = versions[ResourceType.endpoint.typeURL], !held.isEmpty else { return [first] }
            var eds = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            eds.typeURL = ResourceType.endpoint.typeURL
            eds.resourceNamesSubscribe = held.keys.sorted()
            eds.initialResourceVersions = held
            return [first, eds]
        }

        func handle(_ bytes: [UInt8], at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            handle(ResponseSummary(reading: bytes, delta: true, keepValues: sidecar.trackContent), at: now)
        }

        func handle(_ response: ResponseSummary, at now: ContinuousClock.Instant) -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest] {
            let (nonce, typeURL, resources, removed) = (response.nonce, response.typeURL, response.resources, response.removed)
            let resourceVersions = response.versions
            sidecar.state.withLock { state in
                for (name, version) in resourceVersions { state.deltaVersions[typeURL, default: [:]][name] = version }
                for name in removed { state.deltaVersions[typeURL]?[name] = nil }
            }
            var ack = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            ack.typeURL = typeURL
            ack.responseNonce = nonce
            if typeURL == ResourceType.cluster.typeURL {
                let clusters = sidecar.state.withLock { state -> Set<String> in
                    state.clustersRemoved += removed.filter(state.clusters.contains).count
                    state.clusters.formUnion(resources.map(\.name))
                    state.clusters.subtract(removed)
                    state.bytes += response.bytes
                    state.responses += 1
                    return state.clusters
                }
                let new = clusters.subtracting(subscribed)
                let gone = subscribed.subtracting(clusters)
                guard !new.isEmpty || !gone.isEmpty else { return [ack] }
                subscribed = clusters
                var eds = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
                eds.typeURL = ResourceType.endpoint.typeURL
                eds.resourceNamesSubscribe = new.sorted()
                eds.resourceNamesUnsubscribe = gone.sorted()
                return [ack, eds]
            }
            sidecar.record(resources, at: now, bytes: response.bytes)
            if sidecar.trackContent, !removed.isEmpty {
                sidecar.state.withLock { state in
                    for name in removed {
                        guard let held = state.endpoints.removeValue(forKey: name) else { continue }
                        state.heldBytes[name] = nil
                        state.changes.append(Change(assignment: name, at: now, added: 0, removed: held.count))
                    }
                }
            }
            if sidecar.injectNack() {
                ack.errorDetail = .with {
                    $0.code = 3
                    $0.message = "injected NACK (legation-bench --nack-every)"
                }
            }
            return [ack]
        }
    }
}
