import Synchronization
import Testing

@testable import Shared

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ConcurrentMapTests {
    /// The same as `map`, in order, whether the work is split or not; a small batch is not split.
    @Test(arguments: [0, 1, 31, 32, 33, 1000])
    func itIsMapInOrder(count: Int) {
        let items = (0..<count).map { "item-\($0)" }
        let threads = Mutex<Set<pthread_t>>([])
        let mapped = items.concurrentMap(minimumPerWorker: 32) { item in
            threads.withLock { _ = $0.insert(pthread_self()) }
            return item.uppercased()
        }
        #expect(mapped == items.map { $0.uppercased() })
        if count < 32 { #expect(threads.withLock { $0.isSubset(of: [pthread_self()]) }, "a small batch stays on the caller's thread") }
    }
}
