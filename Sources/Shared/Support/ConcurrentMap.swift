import Dispatch
import Foundation

extension Array where Element: Sendable {
    /// `transform` of each element, in order, worked out on up to every core at once when there are at
    /// least `minimumPerWorker` elements for each: for the few large batches a process has (a cold
    /// start's thousand clusters), not for every small change.
    package func concurrentMap<Result: Sendable>(minimumPerWorker: Int, _ transform: @Sendable (Element) -> Result) -> [Result] {
        let workers = Swift.min(ProcessInfo.processInfo.activeProcessorCount, count / Swift.max(1, minimumPerWorker) + 1)
        guard workers > 1 else { return map(transform) }
        // Shared with the workers for the duration of `concurrentPerform` only, each index written by one.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Result?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer {
            results.deinitialize()
            results.deallocate()
        }
        let elements = self
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for index in stride(from: worker, to: elements.count, by: workers) { results[index] = transform(elements[index]) }
        }
        return results.map { $0! }
    }
}
