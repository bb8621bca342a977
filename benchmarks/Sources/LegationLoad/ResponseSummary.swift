import Shared

/// What a simulated sidecar reads of a response, field by field: so a response can be read as its
/// frames arrive, keeping each resource only as long as it takes to read its name (and its bytes only
/// when the sidecar tracks content).
public struct ResponseSummary: Sendable {
    let delta: Bool
    let keepValues: Bool
    var version = "", nonce = "", typeURL = ""
    var resources: [(name: String, value: ArraySlice<UInt8>)] = []
    var versions: [(String, String)] = []
    var removed: [String] = []
    var bytes = 0

    init(delta: Bool, keepValues: Bool) {
        self.delta = delta
        self.keepValues = keepValues
    }

    /// A whole response's summary.
    init(reading bytes: [UInt8], delta: Bool, keepValues: Bool) {
        self.init(delta: delta, keepValues: keepValues)
        for field in MiniProtobuf.fields(bytes[...]) { add(field.number, field.value) }
        self.bytes = bytes.count
    }

    /// One top-level field of a `DiscoveryResponse` (version 1, resources 2, type_url 4, nonce 5) or a
    /// `DeltaDiscoveryResponse` (resources 2 as `Resource {version 1, resource 2, name 3}`, type_url 4,
    /// nonce 5, removed_resources 6).
    mutating func add(_ number: Int, _ value: ArraySlice<UInt8>) {
        switch (number, delta) {
        case (1, false): version = MiniProtobuf.string(value)
        case (2, false):
            if let any = MiniProtobuf.valueOfAny(value), let name = MiniProtobuf.first(1, in: any) {
                resources.append((MiniProtobuf.string(name), keepValues ? any : []))
            }
        case (2, true):
            guard let name = MiniProtobuf.first(3, in: value).map(MiniProtobuf.string) else { return }
            let any = keepValues ? MiniProtobuf.first(2, in: value).flatMap(MiniProtobuf.valueOfAny) ?? [] : []
            resources.append((name, any))
            versions.append((name, MiniProtobuf.first(1, in: value).map(MiniProtobuf.string) ?? ""))
        case (4, _): typeURL = MiniProtobuf.string(value)
        case (5, _): nonce = MiniProtobuf.string(value)
        case (6, true): removed.append(MiniProtobuf.string(value))
        default: break
        }
    }
}
