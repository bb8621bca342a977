/// What a stream holds of one resource type, by name: an open-addressing table (linear probing) of the
/// resources themselves, each of which knows its name.
///
/// A slot is one reference, 8 bytes. A `[String: EncodedResource]` keeps a name and a reference
/// (24 bytes) in about as many slots: 6.4 KB for 100 resources against 2 KB here (256 slots, kept at
/// most three quarters full), for each type on each stream. A value type with copy-on-write storage, as a dictionary is.
public struct HeldResources: Sendable {
    private var slots: ContiguousArray<EncodedResource?> = []
    public private(set) var count = 0

    public init() {}

    public init(_ resources: some Sequence<EncodedResource>) {
        for resource in resources { update(resource) }
    }

    public var isEmpty: Bool { count == 0 }

    /// The resource held under `name`.
    public subscript(name: String) -> EncodedResource? {
        guard count > 0 else { return nil }
        let mask = slots.count - 1
        var index = name.hashValue & mask
        while let held = slots[index] {
            if held.name == name { return held }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Every resource held, in no particular order.
    public var resources: some Sequence<EncodedResource> { slots.lazy.compactMap { $0 } }

    /// The names held, in no particular order.
    public var names: [String] { resources.map(\.name) }

    /// As a dictionary by name (for views and tests).
    public var dictionary: [String: EncodedResource] {
        Dictionary(uniqueKeysWithValues: resources.lazy.map { ($0.name, $0) })
    }

    /// Holds `resource` under its name. - Returns: the one it replaced.
    @discardableResult
    public mutating func update(_ resource: EncodedResource) -> EncodedResource? {
        if (count + 1) * 4 > slots.count * 3 { resize(to: Swift.max(8, slots.count * 2)) }
        let mask = slots.count - 1
        var index = resource.name.hashValue & mask
        while let held = slots[index] {
            if held.name == resource.name {
                slots[index] = resource
                return held
            }
            index = (index + 1) & mask
        }
        slots[index] = resource
        count += 1
        return nil
    }

    /// Stops holding `name`. - Returns: what was held.
    @discardableResult
    public mutating func remove(_ name: String) -> EncodedResource? {
        guard count > 0 else { return nil }
        let mask = slots.count - 1
        var index = name.hashValue & mask
        while let held = slots[index] {
            if held.name == name {
                slots[index] = nil
                count -= 1
                closeGap(at: index)
                return held
            }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Room for `capacity` resources without growing.
    public mutating func reserveCapacity(_ capacity: Int) {
        var size = Swift.max(8, slots.count)
        while capacity * 4 > size * 3 { size *= 2 }
        if size > slots.count { resize(to: size) }
    }

    /// Linear probing's deletion without tombstones: the resources after the emptied slot that probed
    /// past it move back into it, so every lookup still finds its resource before an empty slot.
    private mutating func closeGap(at emptied: Int) {
        let mask = slots.count - 1
        var hole = emptied
        var next = (emptied + 1) & mask
        while let moving = slots[next] {
            let home = moving.name.hashValue & mask
            // `moving` may fill the hole unless its home lies cyclically in (hole, next].
            let homeBetween = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !homeBetween {
                slots[hole] = moving
                slots[next] = nil
                hole = next
            }
            next = (next + 1) & mask
        }
    }

    private mutating func resize(to size: Int) {
        let old = slots
        slots = ContiguousArray(repeating: nil, count: size)
        count = 0
        for case let resource? in old { update(resource) }
    }
}

extension HeldResources: Equatable {
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.count == rhs.count && lhs.resources.allSatisfy { rhs[$0.name] == $0 }
    }
}
