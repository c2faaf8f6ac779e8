import XCTest
@testable import ChatClient

/// The terminal clients' line editor, apart from any terminal.
final class LineEditorTests: XCTestCase {
    private func type(_ text: String, into editor: inout LineEditor) {
        for character in text { _ = editor.apply(.insert(character)) }
    }

    func testCursorMovesAndEditsInTheMiddle() {
        var editor = LineEditor()
        type("hello world", into: &editor)
        _ = editor.apply(.home)
        type(">", into: &editor)
        XCTAssertEqual(String(editor.characters), ">hello world")
        XCTAssertEqual(editor.cursor, 1)
        _ = editor.apply(.end)
        _ = editor.apply(.left)
        _ = editor.apply(.left)
        _ = editor.apply(.deleteBackward)
        XCTAssertEqual(String(editor.characters), ">hello wold")
        _ = editor.apply(.deleteForward)
        XCTAssertEqual(String(editor.characters), ">hello wod")
        for _ in 0..<20 { _ = editor.apply(.right) }
        XCTAssertEqual(editor.cursor, editor.characters.count, "never past the end")
        for _ in 0..<20 { _ = editor.apply(.left) }
        XCTAssertEqual(editor.cursor, 0, "never before the start")
        XCTAssertFalse(editor.apply(.deleteBackward), "nothing before the start to delete")
    }

    func testKillsTheWordBeforeTheStartAndTheEnd() {
        var editor = LineEditor()
        type("one two  three", into: &editor)
        XCTAssertTrue(editor.apply(.killWord))
        XCTAssertEqual(String(editor.characters), "one two  ")
        _ = editor.apply(.killWord)
        XCTAssertEqual(String(editor.characters), "one ")
        type("2 3", into: &editor)
        _ = editor.apply(.left)
        _ = editor.apply(.killToEnd)
        XCTAssertEqual(String(editor.characters), "one 2 ")
        _ = editor.apply(.left)
        _ = editor.apply(.killToStart)
        XCTAssertEqual(String(editor.characters), " ")
        XCTAssertEqual(editor.cursor, 0)
    }

    func testHistoryWalksBackAndForwardAndKeepsTheDraft() {
        var editor = LineEditor()
        for line in ["first", "second", "second", "   ", "third"] {
            type(line, into: &editor)
            _ = editor.submit()
        }
        XCTAssertEqual(editor.history, ["first", "second", "third"], "no blanks, no repeats in a row")
        type("draft", into: &editor)
        _ = editor.apply(.previous)
        XCTAssertEqual(String(editor.characters), "third")
        _ = editor.apply(.previous)
        _ = editor.apply(.previous)
        _ = editor.apply(.previous)
        XCTAssertEqual(String(editor.characters), "first", "stops at the oldest")
        _ = editor.apply(.next)
        XCTAssertEqual(String(editor.characters), "second")
        XCTAssertEqual(editor.cursor, 6)
        _ = editor.apply(.next)
        _ = editor.apply(.next)
        XCTAssertEqual(String(editor.characters), "draft", "back to what was being written")
        _ = editor.apply(.next)
        XCTAssertEqual(String(editor.characters), "draft")
    }

    func testMultibyteCharactersAreWholeAndTheDecoderWaitsForThem() {
        var decoder = UTF8InputDecoder()
        let bytes = Array("é😀a".utf8)
        let characters = bytes.compactMap { decoder.feed($0) }
        XCTAssertEqual(String(characters), "é😀a")
        var editor = LineEditor()
        type("a😀b", into: &editor)
        _ = editor.apply(.left)
        _ = editor.apply(.deleteBackward)
        XCTAssertEqual(String(editor.characters), "ab", "one key removes the whole character")
        XCTAssertNil(decoder.feed(0x80), "a stray continuation byte is no character")
    }

    func testVisibleWidthSkipsColours() {
        XCTAssertEqual(Terminal.visibleWidth("\u{1B}[1mann → bob> \u{1B}[0m"), 11)
        XCTAssertEqual(Terminal.visibleWidth("e\u{301}"), 1)
    }
}
