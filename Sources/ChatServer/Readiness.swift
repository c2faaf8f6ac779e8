import ChatCore
import ServerRuntime
import Synchronization

/// Whether this process should be sent traffic (`GET /readyz`), apart from whether it runs at
/// all (`GET /livez`): a load balancer drains a process that is not ready and keeps one that
/// is not live from being restarted for nothing. Not ready while the database does not
/// answer, while the message writer has been overloaded (its senders paused) for
/// `Readiness.overloadMilliseconds` without a break — a burst the writer's back-pressure absorbs
/// does not take every process out of a balancer at once — and from the first moment of a
/// graceful stop.
final class Readiness: Sendable {
    static let overloadMilliseconds: Int64 = 5_000
    private let stopping = Atomic<Bool>(false)
    private let store: any ChatStore
    private let writerOverloaded: @Sendable () -> Bool

    init(store: any ChatStore, writerOverloaded: @escaping @Sendable () -> Bool) {
        self.store = store
        self.writerOverloaded = writerOverloaded
    }

    /// A graceful stop began: not ready from now on.
    func beginStopping() { stopping.store(true, ordering: .relaxed) }

    /// Why the process is not ready (none: it is), in a fixed order.
    func reasons(completion: @escaping @Sendable ([String]) -> Void) {
        // Stopping says it all: no need to ask the database.
        if stopping.load(ordering: .relaxed) { return completion(["shutting down"]) }
        var known: [String] = []
        if writerOverloaded() { known.append("message writer overloaded") }
        store.checkHealth { [known] result in
            if case .failure = result { completion(known + ["database unavailable"]) } else { completion(known) }
        }
    }
}
