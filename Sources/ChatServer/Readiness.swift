import ChatCore
import ServerRuntime
import Synchronization

/// Whether this process should be sent traffic (`GET /readyz`), apart from whether it runs at
/// all (`GET /livez`): a load balancer drains a process that is not ready and keeps one that
/// is not live from being restarted for nothing. Not ready while the database does not
/// answer, while the message writer is overloaded (its senders are being paused), and from
/// the first moment of a graceful stop.
final class Readiness: Sendable {
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
        var known: [String] = []
        if stopping.load(ordering: .relaxed) { known.append("shutting down") }
        if writerOverloaded() { known.append("message writer overloaded") }
        store.checkHealth { [known] result in
            if case .failure = result { completion(known + ["database unavailable"]) } else { completion(known) }
        }
    }
}
