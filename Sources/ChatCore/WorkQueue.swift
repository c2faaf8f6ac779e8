import Dispatch
import Synchronization

/// Runs CPU-heavy work (bcrypt) off the event loops, on Dispatch's pool of one thread per
/// core, with a bound on how much may wait: past it, `submit` refuses and the caller answers
/// "try again" instead of queueing without end.
public final class WorkQueue: Sendable {
    private let queue: DispatchQueue
    private let pending = Atomic<Int>(0)
    public let limit: Int

    public init(label: String, limit: Int) {
        self.queue = DispatchQueue(label: label, qos: .userInitiated, attributes: .concurrent)
        self.limit = limit
    }

    /// False when `limit` jobs are already waiting or running; then `work` is not run.
    @discardableResult
    public func submit(_ work: @escaping @Sendable () -> Void) -> Bool {
        let before = pending.add(1, ordering: .relaxed).oldValue
        guard before < limit else {
            pending.subtract(1, ordering: .relaxed)
            return false
        }
        queue.async {
            work()
            self.pending.subtract(1, ordering: .relaxed)
        }
        return true
    }

}
