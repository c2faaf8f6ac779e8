import ChatCore
import ChatTestSupport
import ServerRuntime
import Synchronization
import XCTest

final class BlockListTests: XCTestCase {
    let ann = "00000000-0000-4000-8000-000000000001", bob = "00000000-0000-4000-8000-000000000002"
    let carol = "00000000-0000-4000-8000-000000000003"

    private func store() -> InMemoryChatStore {
        let store = InMemoryChatStore(makeID: { "unused" })
        for (id, name) in [(ann, "ann"), (bob, "bob"), (carol, "carol")] { store.addUser(id: id, email: "\(name)@x.com", username: name) }
        return store
    }

    private func set(_ list: BlockList, _ blocker: String, _ target: String?, _ blocking: Bool) -> Result<Void, ServiceError> {
        let box = Locked<Result<Void, ServiceError>?>(nil)
        list.set(blocker: blocker, target: target, blocking: blocking) { result in box.withLock { $0 = result } }
        return box.withLock { $0! }  // the in-memory store answers at once
    }

    func testABlockSeparatesBothWaysButOnlyTheBlockerBlocks() throws {
        let list = BlockList(store: store())
        list.load()
        XCTAssertTrue(list.isLoaded)
        XCTAssertFalse(list.separates(ann, bob))
        XCTAssertNoThrow(try set(list, ann, bob.uppercased(), true).get())
        XCTAssertTrue(list.isBlocked(bob, by: ann))
        XCTAssertFalse(list.isBlocked(ann, by: bob))
        XCTAssertTrue(list.separates(ann, bob))
        XCTAssertTrue(list.separates(bob, ann))
        XCTAssertFalse(list.separates(ann, carol))
        XCTAssertNoThrow(try set(list, ann, bob, true).get(), "blocking twice is no error")
        XCTAssertNoThrow(try set(list, ann, bob, false).get())
        XCTAssertFalse(list.separates(ann, bob))
        XCTAssertNoThrow(try set(list, ann, bob, false).get(), "unblocking someone not blocked is no error")
    }

    func testRefusesOneselfANonUUIDAndSomeoneWhoDoesNotExist() {
        let list = BlockList(store: store())
        list.load()
        XCTAssertEqual(set(list, ann, ann, true).map { "done" }, .failure(.invalidInput("you cannot block yourself")))
        XCTAssertEqual(set(list, ann, "bob", true).map { "done" }, .failure(.invalidInput("the user id must be a UUID")))
        XCTAssertEqual(set(list, ann, nil, true).map { "done" }, .failure(.invalidInput("the user id must be a UUID")))
        XCTAssertEqual(set(list, ann, "00000000-0000-4000-8000-0000000000ff", true).map { "done" }, .failure(ServiceError(.notFound, "User not found")))
        XCTAssertFalse(list.separates(ann, "00000000-0000-4000-8000-0000000000ff"))
    }

    func testBlocksAreReadBackAtStartAndNothingChangesBeforeThatRead() throws {
        let store = store()
        let first = BlockList(store: store)
        first.load()
        XCTAssertNoThrow(try set(first, carol, ann, true).get())
        store.setAvailable(false)
        let restarted = BlockList(store: store)
        restarted.load(retryMilliseconds: 20)
        XCTAssertFalse(restarted.isLoaded)
        XCTAssertEqual(set(restarted, bob, ann, true).map { "done" }, .failure(.unavailable))
        store.setAvailable(true)
        let deadline = Date().addingTimeInterval(5)
        while !restarted.isLoaded && Date() < deadline { usleep(5_000) }
        XCTAssertTrue(restarted.isLoaded, "retried until the store answered")
        XCTAssertTrue(restarted.isBlocked(ann, by: carol))
        let listed = Locked<[(user: User, since: String)]>([])
        restarted.list(blocker: carol) { result in listed.withLock { $0 = (try? result.get()) ?? [] } }
        XCTAssertEqual(listed.withLock { $0.map(\.user.id) }, [ann])
    }
}
