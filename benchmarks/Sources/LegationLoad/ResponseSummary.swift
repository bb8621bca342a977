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
            if let any = MiniProtobuf.valueOfAny(value), let name = MiniProtobuf.fields(any).first(where: { $0.number == 1 }) {
                resources.append((MiniProtobuf.string(name.value), keepValues ? any : []))
            }
        case (2, true):
            let parts = MiniProtobuf.fields(value)
            guard let name = parts.first(where: { $0.number == 3 }).map({ MiniProtobuf.string($0.value) }) else { return }
            let any = keepValues ? parts.first(where: { $0.number == 2 }).flatMap { MiniProtobuf.valueOfAny($0.value) } ?? [] : []
            resources.append((name, any))
            versions.append((name, parts.first(where: { $0.number == 1 }).map { MiniProtobuf.string($0.value) } ?? ""))
        case (4, _): typeURL = MiniProtobuf.string(value)
        case (5, _): nonce = MiniProtobuf.string(value)
        case (6, true): removed.append(MiniProtobuf.string(value))
        default: break
        }
    }
}
