import Shared

/// One slice's endpoints ready to be merged into a service's set: sorted by address, each address once,
/// with each endpoint's address order key, rank (ready > serving > neither) and encoding as a set's
/// field 7 laid out flat. A merge then compares plain words and copies byte ranges: it touches no
/// endpoint object (no reference counting) except to compare the text of two addresses whose first
/// 16 bytes are equal, and to collect the chosen ones.
///
/// Immutable once made; the flat memory is owned here and freed with it.
final class SortedEndpoints: @unchecked Sendable {
    let endpoints: [Endpoint]
    /// The same endpoints in flat memory, for the merge's rare text comparisons.
    fileprivate let flatEndpoints: UnsafeMutablePointer<Endpoint>
    /// Two words per endpoint (`Endpoint.addressOrderKey`).
    fileprivate let keys: UnsafeMutablePointer<UInt64>
    fileprivate let ranks: UnsafeMutablePointer<UInt8>
    /// Where each endpoint's encoding ends in `framed`.
    fileprivate let ends: UnsafeMutablePointer<Int>
    fileprivate let framed: UnsafeMutablePointer<UInt8>
    let framedCount: Int

    var count: Int { endpoints.count }

    /// Sorts a slice's endpoints by address (stable) and keeps one per address: the best rank
    /// (ready > serving > neither), then the first. Each order key is read once, for the sort, the
    /// de-duplication and the layout.
    init(slice items: [Endpoint]) {
        let itemKeys = items.map(\.addressOrderKey)
        let order = items.indices.sorted { a, b in
            if itemKeys[a] != itemKeys[b] { return itemKeys[a] < itemKeys[b] }
            return items[a].hasAddress(of: items[b]) ? a < b : items[a].addressPrecedes(items[b])
        }
        var kept: [Int] = []
        var keptRanks: [UInt8] = []
        kept.reserveCapacity(order.count)
        keptRanks.reserveCapacity(order.count)
        for index in order {
            let rank = Self.rank(items[index].conditions)
            if let last = kept.last, itemKeys[last] == itemKeys[index], items[last].hasAddress(of: items[index]) {
                if rank > keptRanks[keptRanks.count - 1] {
                    kept[kept.count - 1] = index
                    keptRanks[keptRanks.count - 1] = rank
                }
                continue
            }
            kept.append(index)
            keptRanks.append(rank)
        }
        let endpoints = kept.map { items[$0] }
        self.endpoints = endpoints
        let count = endpoints.count
        let flat = UnsafeMutablePointer<Endpoint>.allocate(capacity: count)
        endpoints.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { flat.initialize(from: base, count: count) }
        }
        flatEndpoints = flat
        keys = .allocate(capacity: 2 * count)
        ranks = .allocate(capacity: count)
        ends = .allocate(capacity: count)
        var total = 0
        for (position, index) in kept.enumerated() {
            keys[2 * position] = itemKeys[index].0
            keys[2 * position + 1] = itemKeys[index].1
            ranks[position] = keptRanks[position]
            total += items[index].framedCount
            ends[position] = total
        }
        framedCount = total
        framed = .allocate(capacity: Swift.max(total, 1))
        var cursor = framed
        for endpoint in endpoints { cursor = endpoint.writeFramed(to: cursor) }
        precondition(cursor - framed == total)
    }

    deinit {
        flatEndpoints.deinitialize(count: endpoints.count)
        flatEndpoints.deallocate()
        keys.deallocate()
        ranks.deallocate()
        ends.deallocate()
        framed.deallocate()
    }

    /// The rank that decides which endpoint stays when the same address appears twice.
    private static func rank(_ conditions: Endpoint.Conditions) -> UInt8 {
        conditions.ready ? 2 : (conditions.serving ? 1 : 0)
    }

    // MARK: Merging

    /// Merges slices into one list of endpoints and the set's content bytes (`ports` first): an address
    /// in several slices is kept once, the best rank, then the earliest slice. One slice is taken as it
    /// is (its endpoints shared, its encoding copied once); several go through a heap of their heads,
    /// O(n log k), and are copied in runs (consecutive endpoints of one slice).
    static func merge(_ lists: [SortedEndpoints], ports: [ServicePort]) -> (endpoints: EndpointList, content: [UInt8]) {
        let room = lists.reduce(0) { $0 + $1.framedCount }
        if lists.count <= 1 {
            let content = EndpointSet.assembleContent(ports: ports, endpointBytes: room) { cursor in
                guard let list = lists.first else { return cursor }
                cursor.update(from: list.framed, count: list.framedCount)
                return cursor + list.framedCount
            }
            return (.ready(lists.first?.endpoints ?? []), content)
        }
        let cursors = UnsafeMutablePointer<Cursor>.allocate(capacity: lists.count)
        let order = UnsafeMutablePointer<Int>.allocate(capacity: lists.count)
        defer {
            cursors.deallocate()
            order.deallocate()
        }
        for (index, list) in lists.enumerated() {
            (cursors + index).initialize(
                to: Cursor(
                    endpoints: list.flatEndpoints, keys: list.keys, ranks: list.ranks, ends: list.ends, framed: list.framed,
                    count: list.count))
        }
        // Runs of consecutive endpoints of one slice, in merged order.
        var runs: [(list: Int, start: Int, end: Int)] = []
        withExtendedLifetime(lists) {
            var heap = Heads(cursors: cursors, heap: order, count: 0)
            for index in lists.indices where lists[index].count > 0 { heap.push(index) }
            while let taken = heap.takeNext() {
                if let last = runs.last, last.list == taken.list, last.end == taken.index {
                    runs[runs.count - 1].end += 1
                } else {
                    runs.append((taken.list, taken.index, taken.index + 1))
                }
            }
        }
        // The list itself is made only if someone asks (the publish path does not).
        let total = runs.reduce(0) { $0 + $1.end - $1.start }
        let endpoints = DeferredEndpoints(count: total) { [runs, total] in
            var endpoints: [Endpoint] = []
            endpoints.reserveCapacity(total)
            for run in runs { endpoints += lists[run.list].endpoints[run.start..<run.end] }
            return endpoints
        }
        let content = withExtendedLifetime(lists) {
            EndpointSet.assembleContent(ports: ports, endpointBytes: room) { start in
                var cursor = start
                for run in runs {
                    let list = cursors[run.list]
                    let from = run.start == 0 ? 0 : list.ends[run.start - 1]
                    let to = list.ends[run.end - 1]
                    cursor.update(from: list.framed + from, count: to - from)
                    cursor += to - from
                }
                return cursor
            }
        }
        return (.deferred(endpoints), content)
    }

    /// A slice's flat layout and how far the merge has taken it: plain values, no reference counting.
    private struct Cursor {
        var endpoints: UnsafePointer<Endpoint>
        var keys: UnsafePointer<UInt64>
        var ranks: UnsafePointer<UInt8>
        var ends: UnsafePointer<Int>
        var framed: UnsafePointer<UInt8>
        var count: Int
        var head = 0

        var key: (UInt64, UInt64) { (keys[2 * head], keys[2 * head + 1]) }
        var rank: UInt8 { ranks[head] }
    }

    /// A binary heap of the slices whose next endpoint is not taken, the one that comes first on top
    /// (equal addresses by slice order). Over memory the merge owns: copying it copies two pointers.
    private struct Heads {
        let cursors: UnsafeMutablePointer<Cursor>
        let heap: UnsafeMutablePointer<Int>
        var count: Int

        mutating func push(_ list: Int) {
            heap[count] = list
            count += 1
            var child = count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard precedes(heap[child], heap[parent]) else { break }
                (heap[child], heap[parent]) = (heap[parent], heap[child])
                child = parent
            }
        }

        /// The next endpoint of the merge (one per address: the best rank, then the earliest slice).
        mutating func takeNext() -> (list: Int, index: Int)? {
            guard count > 0 else { return nil }
            let first = heap[0]
            var best = (list: first, index: cursors[first].head)
            let key = cursors[first].key
            advanceTop()
            // The same address in later slices comes up next.
            while count > 0, cursors[heap[0]].key == key,
                cursors[heap[0]].endpoints[cursors[heap[0]].head].hasAddress(of: cursors[best.list].endpoints[best.index])
            {
                let next = heap[0]
                if cursors[next].rank > cursors[best.list].ranks[best.index] { best = (next, cursors[next].head) }
                advanceTop()
            }
            return best
        }

        private mutating func advanceTop() {
            let list = heap[0]
            cursors[list].head += 1
            if cursors[list].head == cursors[list].count {
                count -= 1
                heap[0] = heap[count]
            }
            if count > 0 { siftDown(0) }
        }

        private func precedes(_ a: Int, _ b: Int) -> Bool {
            let keyA = cursors[a].key
            let keyB = cursors[b].key
            if keyA != keyB { return keyA < keyB }
            let first = cursors[a].endpoints[cursors[a].head]
            let second = cursors[b].endpoints[cursors[b].head]
            return first.hasAddress(of: second) ? a < b : first.addressPrecedes(second)
        }

        private func siftDown(_ start: Int) {
            var parent = start
            while true {
                let left = 2 * parent + 1
                guard left < count else { return }
                var child = left
                if left + 1 < count, precedes(heap[left + 1], heap[left]) { child = left + 1 }
                guard precedes(heap[child], heap[parent]) else { return }
                (heap[child], heap[parent]) = (heap[parent], heap[child])
                parent = child
            }
        }
    }
}
