import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The terminal of an interactive client: a prompt with a line being edited, and output that
/// prints above it without garbling it. Raw mode only when stdin and stdout are terminals.
/// The editor: ←/→ (Ctrl-B/F), Home/End (Ctrl-A/E), ↑/↓ through the lines sent, Backspace,
/// Delete, Ctrl-U (to the start), Ctrl-K (to the end), Ctrl-W (the word before), Tab ignored.
/// A line longer than the terminal is wide wraps, and is cleared whole when redrawn.
final class Terminal: @unchecked Sendable {
    let interactive: Bool
    let colors: Bool
    private let lock = NSLock()
    private var editor = LineEditor()
    private var prompt = "> "
    private var original = termios()
    private var raw = false
    /// The row of the input (0: the prompt's) the terminal's cursor is on.
    private var cursorRow = 0
    /// Called on the reading thread after each change of the line, with the line.
    var onEdit: ((String) -> Void)?

    init() {
        interactive = isatty(0) == 1 && isatty(1) == 1
        colors = isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    }

    enum Style: String {
        case dim = "2", bold = "1", green = "32", red = "31", cyan = "36", yellow = "33"
    }

    func styled(_ text: String, _ style: Style) -> String {
        colors ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }

    func setPrompt(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        prompt = text
        render()
    }

    func enterRawMode() {
        guard interactive, !raw else { return }
        tcgetattr(0, &original)
        var settings = original
        settings.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG)
        settings.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &settings.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        tcsetattr(0, TCSANOW, &settings)
        raw = true
    }

    func restore() {
        guard raw else { return }
        tcsetattr(0, TCSANOW, &original)
        raw = false
        write("\r\n")
    }

    private func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.write(1, $0.baseAddress! + offset, $0.count - offset) }
            if count <= 0 { return }
            offset += count
        }
    }

    /// Prints a whole line above the one being edited.
    func print(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        guard interactive else { return write(text + "\n") }
        write(clearInput() + text + "\r\n")
        cursorRow = 0
        render(clearing: false)
    }

    private var width: Int {
        var size = winsize()
        guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }

    /// Back to the start of the input and everything below it cleared.
    private func clearInput() -> String {
        (cursorRow > 0 ? "\u{1B}[\(cursorRow)A" : "") + "\r\u{1B}[J"
    }

    /// Draws prompt and line, the cursor where the editor has it. Called with the lock held.
    private func render(clearing: Bool = true) {
        guard interactive else { return }
        let width = self.width
        let promptWidth = Self.visibleWidth(prompt)
        var out = clearing ? clearInput() : ""
        out += prompt + String(editor.characters)
        let end = promptWidth + editor.characters.count
        // At the right margin the cursor waits for the next character: take it down now.
        if end > 0, end % width == 0 { out += "\r\n" }
        let endRow = end / width
        let target = promptWidth + editor.cursor
        let targetRow = target / width
        if endRow > targetRow { out += "\u{1B}[\(endRow - targetRow)A" }
        out += "\r"
        if target % width > 0 { out += "\u{1B}[\(target % width)C" }
        cursorRow = targetRow
        write(out)
    }

    /// Columns `text` takes: ANSI sequences take none; a character takes one.
    static func visibleWidth(_ text: String) -> Int {
        var count = 0
        var inEscape = false
        for scalar in text.unicodeScalars {
            if inEscape {
                if (0x40...0x7E).contains(scalar.value) && scalar != "[" { inEscape = false }
            } else if scalar == "\u{1B}" {
                inEscape = true
            } else if scalar.properties.generalCategory != .nonspacingMark {
                count += 1
            }
        }
        return count
    }

    /// The next line entered (nil at Ctrl-D on an empty line, Ctrl-C, or end of input).
    func readLine() -> String? {
        guard interactive else { return Swift.readLine(strippingNewline: true) }
        lock.lock(); render(); lock.unlock()
        var decoder = UTF8InputDecoder()
        while let byte = readByte() {
            var action: LineEditor.Action?
            switch byte {
            case 0x03: return nil  // Ctrl-C
            case 0x04:  // Ctrl-D: leaves on an empty line, else deletes under the cursor
                lock.lock(); let empty = editor.characters.isEmpty; lock.unlock()
                if empty { return nil }
                action = .deleteForward
            case 0x0D, 0x0A:
                lock.lock()
                let text = editor.submit()
                write(clearInput())
                cursorRow = 0
                lock.unlock()
                onEdit?("")
                return text
            case 0x7F, 0x08: action = .deleteBackward
            case 0x01: action = .home
            case 0x05: action = .end
            case 0x02: action = .left
            case 0x06: action = .right
            case 0x0B: action = .killToEnd
            case 0x15: action = .killToStart
            case 0x17: action = .killWord
            case 0x10: action = .previous  // Ctrl-P
            case 0x0E: action = .next  // Ctrl-N
            case 0x1B: action = readEscapeSequence()
            case 0x09: continue  // Tab: nothing to complete, and never a literal tab
            default:
                guard byte >= 0x20, let character = decoder.feed(byte) else { continue }
                action = .insert(character)
            }
            guard let action else { continue }
            lock.lock()
            let atEnd = editor.cursor == editor.characters.count
            let changed = editor.apply(action)
            let text = String(editor.characters)
            if case .insert(let character) = action, atEnd {
                // Typed at the end: echo the character only (a redraw per key would make a
                // long paste quadratic).
                let width = self.width
                let end = Self.visibleWidth(prompt) + editor.characters.count
                write(String(character) + (end % width == 0 ? "\r\n" : ""))
                cursorRow = end / width
            } else {
                render()
            }
            lock.unlock()
            if changed { onEdit?(text) }
        }
        return nil
    }

    private func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let count = Glibc.read(0, &byte, 1)
            if count == 1 { return byte }
            if count < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// After an ESC: the keys people use (arrows, Home, End, Delete); anything else is skipped.
    private func readEscapeSequence() -> LineEditor.Action? {
        guard let kind = readByte() else { return nil }
        guard kind == UInt8(ascii: "[") || kind == UInt8(ascii: "O") else { return nil }
        var parameter: [UInt8] = []
        while let byte = readByte() {
            if (0x40...0x7E).contains(byte) {
                switch (byte, parameter) {
                case (UInt8(ascii: "A"), _): return .previous
                case (UInt8(ascii: "B"), _): return .next
                case (UInt8(ascii: "C"), _): return .right
                case (UInt8(ascii: "D"), _): return .left
                case (UInt8(ascii: "H"), _): return .home
                case (UInt8(ascii: "F"), _): return .end
                case (UInt8(ascii: "~"), Array("1".utf8)), (UInt8(ascii: "~"), Array("7".utf8)): return .home
                case (UInt8(ascii: "~"), Array("4".utf8)), (UInt8(ascii: "~"), Array("8".utf8)): return .end
                case (UInt8(ascii: "~"), Array("3".utf8)): return .deleteForward
                default: return nil
                }
            }
            parameter.append(byte)
            if parameter.count > 16 { return nil }
        }
        return nil
    }
}

/// Whole characters from typed bytes: UTF-8 sequences are collected until complete.
struct UTF8InputDecoder {
    private var pending: [UInt8] = []

    mutating func feed(_ byte: UInt8) -> Character? {
        if byte < 0x80 {
            pending = []
            return Character(Unicode.Scalar(byte))
        }
        if byte >= 0xC0 { pending = [byte] } else if !pending.isEmpty { pending.append(byte) } else { return nil }
        guard let text = String(validating: pending, as: UTF8.self), let character = text.first else {
            if pending.count >= 4 { pending = [] }
            return nil
        }
        pending = []
        return character
    }
}

/// The line being edited and the lines sent before it, apart from any terminal.
struct LineEditor {
    enum Action: Equatable {
        case insert(Character)
        case deleteBackward, deleteForward
        case left, right, home, end
        case killToStart, killToEnd, killWord
        case previous, next
    }

    private(set) var characters: [Character] = []
    private(set) var cursor = 0
    private(set) var history: [String] = []
    /// Where ↑/↓ are in `history` (`history.count`: the line being written), and that line.
    private var historyIndex = 0
    private var draft: [Character] = []
    static let historyLimit = 500

    /// Applies a key; true when the line's text changed.
    mutating func apply(_ action: Action) -> Bool {
        let before = characters
        switch action {
        case .insert(let character):
            characters.insert(character, at: cursor)
            cursor += 1
        case .deleteBackward:
            guard cursor > 0 else { break }
            characters.remove(at: cursor - 1)
            cursor -= 1
        case .deleteForward:
            guard cursor < characters.count else { break }
            characters.remove(at: cursor)
        case .left: cursor = max(0, cursor - 1)
        case .right: cursor = min(characters.count, cursor + 1)
        case .home: cursor = 0
        case .end: cursor = characters.count
        case .killToStart:
            characters.removeSubrange(0..<cursor)
            cursor = 0
        case .killToEnd:
            characters.removeSubrange(cursor...)
        case .killWord:
            var start = cursor
            while start > 0, characters[start - 1].isWhitespace { start -= 1 }
            while start > 0, !characters[start - 1].isWhitespace { start -= 1 }
            characters.removeSubrange(start..<cursor)
            cursor = start
        case .previous:
            guard historyIndex > 0 else { break }
            if historyIndex == history.count { draft = characters }
            historyIndex -= 1
            characters = Array(history[historyIndex])
            cursor = characters.count
        case .next:
            guard historyIndex < history.count else { break }
            historyIndex += 1
            characters = historyIndex == history.count ? draft : Array(history[historyIndex])
            cursor = characters.count
        }
        return characters != before
    }

    /// The line as entered: kept in the history (unless blank or a repeat of the last one),
    /// and the editor starts a new one.
    mutating func submit() -> String {
        let text = String(characters)
        if !text.allSatisfy(\.isWhitespace), history.last != text {
            history.append(text)
            if history.count > Self.historyLimit { history.removeFirst() }
        }
        characters = []
        cursor = 0
        draft = []
        historyIndex = history.count
        return text
    }
}
