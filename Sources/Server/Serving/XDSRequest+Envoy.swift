import EnvoyAPI

// The serving edge: wire messages into the values the protocol machines read.

extension ClientNode {
    init(_ node: Envoy_Config_Core_V3_Node) {
        var version = ""
        switch node.userAgentVersionType {
        case .userAgentVersion(let text)?: version = text
        case .userAgentBuildVersion(let build)?:
            version = "\(build.version.majorNumber).\(build.version.minorNumber).\(build.version.patch)"
        default: break
        }
        self.init(
            id: node.id, cluster: node.cluster, region: node.locality.region, zone: node.locality.zone,
            subZone: node.locality.subZone,
            userAgent: [node.userAgentName, version].filter { !$0.isEmpty }.joined(separator: " "))
    }
}

extension XDSRequest {
    init(_ wire: Envoy_Service_Discovery_V3_DiscoveryRequest) {
        self.init(
            typeURL: wire.typeURL, versionInfo: wire.versionInfo, resourceNames: wire.resourceNames, responseNonce: wire.responseNonce,
            node: wire.hasNode ? ClientNode(wire.node) : nil, errorMessage: wire.hasErrorDetail ? wire.errorDetail.message : nil)
    }
}

extension DeltaXDSRequest {
    init(_ wire: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) {
        self.init(
            typeURL: wire.typeURL, subscribe: wire.resourceNamesSubscribe, unsubscribe: wire.resourceNamesUnsubscribe,
            initialResourceVersions: wire.initialResourceVersions, responseNonce: wire.responseNonce,
            node: wire.hasNode ? ClientNode(wire.node) : nil,
            errorMessage: wire.hasErrorDetail ? wire.errorDetail.message : nil)
    }
}
