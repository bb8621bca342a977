import Synchronization

/// Every resource the server serves at one revision: immutable, shared by every stream.
///
/// Streams do not diff whole snapshots: each remembers the revision it last looked at and asks which
/// names changed since (`changedNames`), so a push costs what changed, not what exists.
public struct ResourceSnapshot: Sendable {
    /// Increases by one with every snapshot that changed something; local to this process.
    public let revision: UInt64
    public let resources: [ResourceType: [String: EncodedResource]]
    /// Each type's names in order: a stream sending many resources walks these instead of sorting
    /// them itself (responses list resources by name, so identical responses share their bytes).
    let sortedNames: [ResourceType: [String]]
    /// The changed names of each of the last revisions, oldest first.
    let history: [(revision: UInt64, changes: [ResourceType: Set<String>])]
    /// `localizedInOrder`'s arrays, made on first use.
    private let localized = LocalizedOrder()

    public static let empty = ResourceSnapshot(revision: 0, resources: [:], sortedNames: [:], history: [])

    public func resource(_ type: ResourceType, named name: String) -> EncodedResource? {
        resources[type]?[name]
    }

    /// The resource as a client at `locality` gets it (see `EncodedResource.localized(for:)`).
    public func resource(_ type: ResourceType, named name: String, for locality: ClientLocality) -> EncodedResource? {
        resources[type]?[name]?.localized(for: locality)
    }

    /// `names` (of resources of the type at `typeURL`) with each name this snapshot has replaced by
    /// the snapshot's own string: a stream that keeps the names a client sent then shares the
    /// snapshot's storage for them instead of holding copies. Names it does not have stay as they are.
    /// Every name of the type in order (a client subscribing to all of them, sorted) is the snapshot's
    /// own array.
    public func sharedNames(_ names: [String], typeURL: String) -> [String] {
        guard let type = ResourceType(rawValue: typeURL), let resources = resources[type] else { return names }
        let all = self.names(type)
        if names.count == all.count, names == all { return all }
        var shared = names
        for index in shared.indices {
            if let found = resources.index(forKey: shared[index]) { shared[index] = resources[found].key }
        }
        return shared
    }

    /// The names of `type`, in order.
    public func names(_ type: ResourceType) -> [String] { sortedNames[type] ?? [] }

    /// The resources of `type` in the order of `names(type)`, each as a client at `locality` gets it:
    /// made once per snapshot, type and locality, and shared by every stream there. A stream's first
    /// response walks it by index instead of looking up and localizing every name: a reconnect storm of
    /// 1,000 sidecars in three zones localizes each assignment three times, not 1,000.
    public func localizedInOrder(_ type: ResourceType, for locality: ClientLocality) -> [EncodedResource] {
        localized.resources(for: LocalizedOrder.Key(type: type, locality: locality)) {
            let resources = self.resources[type] ?? [:]
            return names(type).map { resources[$0]!.localized(for: locality) }
        }
    }

    public func all(_ type: ResourceType) -> [String: EncodedResource] {
        resources[type] ?? [:]
    }

    /// Names of `type` that were added, changed or removed after `revision`, or nil when the history
    /// no longer reaches that far back (the caller then compares everything).
    public func changedNames(_ type: ResourceType, after revision: UInt64) -> Set<String>? {
        if revision >= self.revision { return [] }
        guard let oldest = history.first, oldest.revision <= revision + 1 else { return nil }
        var names = Set<String>()
        for entry in history where entry.revision > revision {
            if let changed = entry.changes[type] { names.formUnion(changed) }
        }
        return names
    }
}

/// A snapshot's resources in name order per type and client locality (`localizedInOrder`). Localities
/// come from clients, so at most `capacity` are kept; beyond that, each is made again when asked.
final class LocalizedOrder: Sendable {
    struct Key: Hashable, Sendable {
        var type: ResourceType
        var locality: ClientLocality
    }

    static let capacity = 32
    private let made = Mutex<[Key: [EncodedResource]]>([:])

    func resources(for key: Key, make: () -> [EncodedResource]) -> [EncodedResource] {
        if let found = made.withLock({ $0[key] }) { return found }
        let resources = make()
        made.withLock { made in
            if made.count < Self.capacity, made[key] == nil { made[key] = resources }
        }
        return resources
    }
}
