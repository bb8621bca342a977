import EnvoyAPI
import SwiftProtobuf

/// A response a stream machine decided to send: its type, how many resources, and its bytes.
public protocol OutboundMessage: Sendable {
    var type: ResourceType { get }
    var resourceCount: Int { get }
    func encoded(controlPlane: String) -> [UInt8]
}

extension OutboundResponse: OutboundMessage {
    public var resourceCount: Int { resources.count }
}

extension OutboundDeltaResponse: OutboundMessage {
    public var resourceCount: Int { resources.count + removed.count }
}

/// What `XDSService` needs of a stream's state machine, state of the world or delta: one loop drives
/// either.
public protocol XDSStreamMachine: Sendable {
    associatedtype Request: SwiftProtobuf.Message & Sendable
    associatedtype Response: OutboundMessage

    init(allowedTypes: Set<ResourceType>, limits: StreamLimits)
    var node: ClientNode? { get }
    mutating func receive(_ request: Request, snapshot: ResourceSnapshot) -> Result<[Response], XDSError>
    mutating func refresh(_ snapshot: ResourceSnapshot) -> [Response]
    /// For metrics and logs: the request's type URL and NACK message, if it is a NACK.
    static func describe(_ request: Request) -> (typeURL: String, nack: String?)
    /// For `/debug/clients`.
    var record: XDSHub.MachineRecord { get }
}

extension SotWStreamStateMachine: XDSStreamMachine {
    public mutating func receive(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest, snapshot: ResourceSnapshot) -> Result<[OutboundResponse], XDSError> {
        switch onRequest(request, snapshot: snapshot) {
        case .none: .success([])
        case .send(let responses): .success(responses)
        case .fail(let error): .failure(error)
        }
    }

    public mutating func refresh(_ snapshot: ResourceSnapshot) -> [OutboundResponse] {
        onSnapshot(snapshot).responses
    }

    public static func describe(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest) -> (typeURL: String, nack: String?) {
        (request.typeURL, request.hasErrorDetail ? request.errorDetail.message : nil)
    }

    public var record: XDSHub.MachineRecord { .stateOfTheWorld(self) }
}

extension DeltaStreamStateMachine: XDSStreamMachine {
    public mutating func receive(_ request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, snapshot: ResourceSnapshot) -> Result<[OutboundDeltaResponse], XDSError> {
        switch onRequest(request, snapshot: snapshot) {
        case .none: .success([])
        case .send(let responses): .success(responses)
        case .fail(let error): .failure(error)
        }
    }

    public mutating func refresh(_ snapshot: ResourceSnapshot) -> [OutboundDeltaResponse] {
        if case .send(let responses) = onSnapshot(snapshot) { return responses }
        return []
    }

    public static func describe(_ request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> (typeURL: String, nack: String?) {
        (request.typeURL, request.hasErrorDetail ? request.errorDetail.message : nil)
    }

    public var record: XDSHub.MachineRecord { .delta(self) }
}

extension SotWStreamStateMachine.Action {
    var responses: [OutboundResponse] {
        if case .send(let responses) = self { return responses }
        return []
    }
}
