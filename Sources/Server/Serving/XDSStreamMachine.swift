import EnvoyAPI
import NIOCore
import SwiftProtobuf

extension OutboundResponse: OutboundMessage {
    public var resourceCount: Int { resources.count }
    public var resourceFields: [ByteBuffer] { resources.map(\.responseFieldBuffer) }
    public var encodedResources: [EncodedResource] { resources }
    public static var usesDeltaFields: Bool { false }
}

extension OutboundDeltaResponse: OutboundMessage {
    public var resourceCount: Int { resources.count + removed.count }
    public var resourceFields: [ByteBuffer] { resources.map(\.deltaResponseFieldBuffer) }
    public var encodedResources: [EncodedResource] { resources }
    public static var usesDeltaFields: Bool { true }
}

/// What a transport needs of a stream's protocol machine, state of the world or delta: how its requests
/// come off the wire, and the machine's two inputs. One driver (`StreamDriver`) runs either.
public protocol XDSStreamMachine: Sendable {
    /// The request as the machine reads it (no wire types).
    associatedtype Request: Sendable
    /// The request as it comes off the wire.
    associatedtype WireRequest: SwiftProtobuf.Message & Sendable
    associatedtype Response: OutboundMessage

    init(allowedTypes: Set<ResourceType>, limits: StreamLimits)
    var node: ClientNode? { get }
    mutating func onRequest(_ request: Request, snapshot: ResourceSnapshot) -> XDSAction<Response>
    mutating func onSnapshot(_ snapshot: ResourceSnapshot) -> XDSAction<Response>
    /// For `/debug/clients`.
    func debugRecord(current snapshot: ResourceSnapshot) -> StreamDebugRecord

    /// The wire request as the machine reads it.
    static func request(_ wire: WireRequest) -> Request
    /// For metrics and logs: the request's type URL and NACK message, if it is a NACK.
    static func describe(_ request: Request) -> (typeURL: String, nack: String?)
    /// The wire request's field numbers for what a transport may skip decoding (`RequestReader`): the
    /// node, used from the first request only, and the resource names an ACK repeats (nil: none).
    static var requestNodeField: Int { get }
    static var requestRepeatedNamesField: Int? { get }
    static func names(of request: WireRequest) -> [String]
    static func setNames(_ names: [String], of request: inout WireRequest)
    /// Replaces the names a request subscribes to with `snapshot`'s strings of the same names
    /// (`ResourceSnapshot.sharedNames`), before the machine keeps them.
    static func shareNames(of request: inout WireRequest, with snapshot: ResourceSnapshot)
}

extension SotWStreamStateMachine: XDSStreamMachine {
    public static func request(_ wire: Envoy_Service_Discovery_V3_DiscoveryRequest) -> XDSRequest { XDSRequest(wire) }

    public static func describe(_ request: XDSRequest) -> (typeURL: String, nack: String?) {
        (request.typeURL, request.errorMessage)
    }

    /// `DiscoveryRequest.node` (2) and `resource_names` (3).
    public static var requestNodeField: Int { 2 }
    public static var requestRepeatedNamesField: Int? { 3 }
    public static func names(of request: Envoy_Service_Discovery_V3_DiscoveryRequest) -> [String] { request.resourceNames }
    public static func setNames(_ names: [String], of request: inout Envoy_Service_Discovery_V3_DiscoveryRequest) {
        request.resourceNames = names
    }
    public static func shareNames(of request: inout Envoy_Service_Discovery_V3_DiscoveryRequest, with snapshot: ResourceSnapshot) {
        guard !request.resourceNames.isEmpty else { return }
        request.resourceNames = snapshot.sharedNames(request.resourceNames, typeURL: request.typeURL)
    }
}

extension DeltaStreamStateMachine: XDSStreamMachine {
    public static func request(_ wire: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> DeltaXDSRequest { DeltaXDSRequest(wire) }

    public static func describe(_ request: DeltaXDSRequest) -> (typeURL: String, nack: String?) {
        (request.typeURL, request.errorMessage)
    }

    /// `DeltaDiscoveryRequest.node` (1); its names are changes, never repeated.
    public static var requestNodeField: Int { 1 }
    public static var requestRepeatedNamesField: Int? { nil }
    public static func names(of request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> [String] { [] }
    public static func setNames(_ names: [String], of request: inout Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) {}
    public static func shareNames(of request: inout Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, with snapshot: ResourceSnapshot) {
        guard !request.resourceNamesSubscribe.isEmpty else { return }
        request.resourceNamesSubscribe = snapshot.sharedNames(request.resourceNamesSubscribe, typeURL: request.typeURL)
    }
}
