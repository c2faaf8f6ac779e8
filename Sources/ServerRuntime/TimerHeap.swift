/// A one-shot timer of an event loop; `cancel()` on the loop.
public final class LoopTimer {
    let deadline: Int64
    private var task: (() -> Void)?

    init(deadline: Int64, task: @escaping () -> Void) {
        self.deadline = deadline
        self.task = task
    }

    public var isCancelled: Bool { task == nil }

    public func cancel() { task = nil }

    func fire() {
        let task = self.task
        self.task = nil
        task?()
    }
}

/// A binary min-heap of timers by deadline; cancelled ones are dropped when they surface.
struct TimerHeap {
    private var items: [LoopTimer] = []

    var count: Int { items.count }

    mutating func nextDeadline() -> Int64? {
        while let first = items.first, first.isCancelled { _ = removeFirst() }
        return items.first?.deadline
    }

    mutating func insert(_ timer: LoopTimer) {
        items.append(timer)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// The earliest timer due at `now`, taken out of the heap; nil when none is due.
    mutating func popDue(now: Int64) -> LoopTimer? {
        while let first = items.first {
            if first.isCancelled { _ = removeFirst(); continue }
            guard first.deadline <= now else { return nil }
            return removeFirst()
        }
        return nil
    }

    private mutating func removeFirst() -> LoopTimer {
        let first = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < items.count, items[left].deadline < items[smallest].deadline { smallest = left }
                if right < items.count, items[right].deadline < items[smallest].deadline { smallest = right }
                guard smallest != parent else { break }
                items.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return first
    }
}
