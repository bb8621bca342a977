import Foundation
import Shared

/// The JSON behind `/debug/clients`, `/debug/resources` and `/debug/sources`, and what
/// `legation status` reads back. Field names are a stable interface for operators' scripts.
public enum DebugViews {
    /// One type of one stream (`StreamDebugRecord.TypeRecord`, made by the stream's machine).
    public typealias TypeView = StreamDebugRecord.TypeRecord

    public struct ClientView: Codable, Sendable, Equatable {
        public var stream: UInt64
        public var kind: String
        public var peer: String
        public var node: ClientNode?
        public var connectedAtUnixMilliseconds: Int64
        public var pushes: Int
        public var bytesSent: Int
        public var staleNonces: Int
        public var types: [TypeView]
    }

    public struct ResourceView: Codable, Sendable, Equatable {
        public var type: String
        public var name: String
        public var version: String
        public var bytes: Int
        /// Load assignments with several localities: the failover order that ranks them per client, and
        /// how many variants with priorities have been made (one per distinct priority assignment).
        public var failoverOrder: String?
        public var variants: Int?
    }

    public struct SourceView: Codable, Sendable, Equatable {
        public var source: String
        public var services: Int
        public var synced: Bool
        public var stale: Bool
        public var removed: Bool
        public var heartbeatAgeMilliseconds: Int64?
        public var heartbeatHolder: String?
        public var lastChangeUnixMilliseconds: Int64?
    }

    public static func clients(_ hub: XDSHub) -> [ClientView] {
        hub.streams.map { record in
            ClientView(
                stream: record.id, kind: record.kind.rawValue, peer: record.peer, node: record.debug.node,
                connectedAtUnixMilliseconds: record.connectedAtUnixMilliseconds, pushes: record.pushes, bytesSent: record.bytesSent,
                staleNonces: record.debug.staleNonces, types: record.debug.types)
        }
    }

    public static func resources(_ snapshot: ResourceSnapshot) -> [ResourceView] {
        ResourceType.allCases.flatMap { type in
            snapshot.all(type).values.sorted { $0.name < $1.name }.map {
                ResourceView(
                    type: type.shortName, name: $0.name, version: $0.version, bytes: $0.resource.count,
                    failoverOrder: $0.priorities?.policy.description,
                    variants: $0.priorities?.variantCount)
            }
        }
    }

    public static func sources(_ statuses: [SourceStatus]) -> [SourceView] {
        let now = WallClock.nowUnixMilliseconds
        return statuses.map {
            SourceView(
                source: $0.source.name, services: $0.services, synced: $0.synced, stale: $0.stale, removed: $0.removed,
                heartbeatAgeMilliseconds: $0.heartbeat.map { max(0, now - $0.sentAtUnixMilliseconds) },
                heartbeatHolder: $0.heartbeat?.holder, lastChangeUnixMilliseconds: $0.lastChangeUnixMilliseconds)
        }
    }

    /// Pretty, sorted JSON with a trailing newline.
    public static func json(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(value)) ?? Data("null".utf8)) + [UInt8(ascii: "\n")]
    }
}
