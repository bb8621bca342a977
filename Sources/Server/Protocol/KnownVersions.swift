import Shared

/// What a delta stream's client holds of one resource type: name → version.
///
/// Nearly every entry is a resource the server sent, held as the resource itself in a `HeldResources`
/// (one reference a name, the name and version strings being the snapshot's). A version that only the
/// client reported (`initial_resource_versions` naming a version the server does not have) is kept as a
/// string beside them. A `[String: String]` of 100 names took about 8 KB a type on every stream; this
/// takes about 2 KB.
public struct KnownVersions: Sendable {
    /// One name's entry.
    public enum Entry: Sendable {
        /// A resource the client was sent (or reported holding at the server's version).
        case sent(EncodedResource)
        /// A version only the client reported.
        case reported(String)

        public var version: String {
            switch self {
            case .sent(let resource): resource.version
            case .reported(let version): version
            }
        }

        /// Whether this is `resource`'s version (by identity first: the snapshot's own object).
        func isVersion(of resource: EncodedResource) -> Bool {
            switch self {
            case .sent(let held): held === resource || held.version == resource.version
            case .reported(let version): version == resource.version
            }
        }
    }

    private var sent = HeldResources()
    private var reported: [String: String] = [:]

    public init() {}

    public var count: Int { sent.count + reported.count }

    public subscript(name: String) -> Entry? {
        if let resource = sent[name] { return .sent(resource) }
        return reported[name].map(Entry.reported)
    }

    /// Every name held, in no particular order.
    public var names: [String] { sent.names + reported.keys }

    /// As a dictionary of versions (for views and tests).
    public var versions: [String: String] {
        var result = reported
        for resource in sent.resources { result[resource.name] = resource.version }
        return result
    }

    /// Room for `capacity` sent resources without growing.
    mutating func reserveCapacity(_ capacity: Int) {
        sent.reserveCapacity(capacity)
    }

    /// Sets `name`'s entry. - Returns: the entry it replaced.
    @discardableResult
    mutating func set(_ name: String, _ entry: Entry?) -> Entry? {
        let old: Entry?
        switch entry {
        case .sent(let resource):
            precondition(resource.name == name, "a held resource is held under its own name")
            old = sent.update(resource).map(Entry.sent) ?? reported.removeValue(forKey: name).map(Entry.reported)
        case .reported(let version):
            let replaced = reported.updateValue(version, forKey: name).map(Entry.reported)
            old = sent.remove(name).map(Entry.sent) ?? replaced
        case nil:
            old = sent.remove(name).map(Entry.sent) ?? reported.removeValue(forKey: name).map(Entry.reported)
        }
        return old
    }
}
