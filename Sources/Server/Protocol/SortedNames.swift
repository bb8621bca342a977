/// A set of resource names kept as one sorted array of distinct names: what a stream subscribes to.
///
/// 16 bytes a name, against the 256 buckets (4 KB) a `Set<String>` of 100 names takes, for each type on
/// each stream; the array is the request's own when that came sorted (the names strings are the
/// snapshot's in any case, see `ResourceSnapshot.sharedNames`). Iterates in name order, so a response
/// walks it without sorting. Lookups are binary searches.
public struct SortedNames: Sendable, Hashable, Sequence, ExpressibleByArrayLiteral {
    /// The names, sorted, each once.
    public private(set) var names: [String]

    public init() { names = [] }

    public init(_ names: [String]) {
        var increasing = true
        var index = names.startIndex
        while increasing, index + 1 < names.endIndex {
            increasing = names[index] < names[index + 1]
            index += 1
        }
        if increasing {
            self.names = names
        } else {
            self.names = []
            self.names.reserveCapacity(names.count)
            for name in names.sorted() where name != self.names.last { self.names.append(name) }
        }
    }

    public init(_ names: some Sequence<String>) { self.init(Array(names)) }

    public init(arrayLiteral names: String...) { self.init(names) }

    public var count: Int { names.count }
    public var isEmpty: Bool { names.isEmpty }

    public func makeIterator() -> IndexingIterator<[String]> { names.makeIterator() }

    public func contains(_ name: String) -> Bool {
        let index = insertionIndex(of: name)
        return index < names.endIndex && names[index] == name
    }

    /// The names here that are not in `other`, in order (one walk over both).
    public func subtracting(_ other: SortedNames) -> [String] {
        var result: [String] = []
        var theirs = other.names.startIndex
        for name in names {
            while theirs < other.names.endIndex, other.names[theirs] < name { theirs += 1 }
            if theirs < other.names.endIndex, other.names[theirs] == name { continue }
            result.append(name)
        }
        return result
    }

    /// These names without `name`.
    public func removing(_ name: String) -> SortedNames {
        let index = insertionIndex(of: name)
        guard index < names.endIndex, names[index] == name else { return self }
        var copy = self
        copy.names.remove(at: index)
        return copy
    }

    /// Adds `added` (any order, duplicates allowed): one merge, not one insertion each.
    public mutating func formUnion(_ added: some Sequence<String>) {
        let new = SortedNames(Array(added)).subtracting(self)
        guard !new.isEmpty else { return }
        var merged: [String] = []
        merged.reserveCapacity(names.count + new.count)
        var mine = names.startIndex
        for name in new {
            while mine < names.endIndex, names[mine] < name {
                merged.append(names[mine])
                mine += 1
            }
            merged.append(name)
        }
        merged.append(contentsOf: names[mine...])
        names = merged
    }

    /// Removes `removed` (any order, names not here ignored).
    public mutating func subtract(_ removed: some Sequence<String>) {
        let gone = SortedNames(Array(removed))
        guard !gone.isEmpty, !isEmpty else { return }
        names = subtracting(gone)
    }

    /// Keeps `names` instead of its own array when they are the same names (a subscription to every
    /// name of a type shares the snapshot's array rather than holding one per stream).
    public mutating func share(_ names: [String]) {
        if self.names.count == names.count, self.names == names { self.names = names }
    }

    /// Membership for names asked in increasing order (a snapshot's names, walked): each answer moves
    /// on from the last, so a walk costs one pass over both, not a binary search a name. A name below
    /// the last asked is searched for.
    public struct Cursor {
        private let names: [String]
        private var index = 0
        private var last: String?

        fileprivate init(_ names: [String]) { self.names = names }

        public mutating func contains(_ name: String) -> Bool {
            if let last, name < last { index = SortedNames.insertionIndex(of: name, in: names) }
            last = name
            while index < names.endIndex, names[index] < name { index += 1 }
            return index < names.endIndex && names[index] == name
        }
    }

    public func cursor() -> Cursor { Cursor(names) }

    /// The names of `names` (in their order, with their offsets there) that are here, or all of them
    /// when `everyName` (a wildcard subscription): asked through a cursor, so walking a snapshot's
    /// sorted names is one pass over both.
    public func members(of names: [String], everyName: Bool) -> Members {
        Members(names: names.enumerated().makeIterator(), cursor: everyName ? nil : cursor())
    }

    public struct Members: Sequence, IteratorProtocol {
        fileprivate var names: EnumeratedSequence<[String]>.Iterator
        fileprivate var cursor: Cursor?

        public mutating func next() -> (offset: Int, name: String)? {
            while let (offset, name) = names.next() {
                if cursor?.contains(name) ?? true { return (offset, name) }
            }
            return nil
        }
    }

    /// The first index whose name is not below `name`.
    private func insertionIndex(of name: String) -> Int { Self.insertionIndex(of: name, in: names) }

    private static func insertionIndex(of name: String, in names: [String]) -> Int {
        var low = names.startIndex
        var high = names.endIndex
        while low < high {
            let middle = (low + high) / 2
            if names[middle] < name { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
