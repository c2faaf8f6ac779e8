import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The terminal of an interactive client: a prompt with a line being typed, and output that
/// prints above it without garbling it. Raw mode only when stdin and stdout are terminals.
final class Terminal: @unchecked Sendable {
    let interactive: Bool
    let colors: Bool
    private let lock = NSLock()
    private var line: [UInt8] = []
    private var prompt = "> "
    private var original = termios()
    private var raw = false
    /// The first bytes of a UTF-8 character being typed, echoed once it is whole.
    private var pendingMultibyte: [UInt8] = []

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
        lock.lock(); prompt = text; lock.unlock()
        redraw()
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

    /// Prints a whole line above the one being typed.
    func print(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        if interactive {
            write("\r\u{1B}[K" + text + "\r\n" + prompt + String(decoding: line, as: UTF8.self))
        } else {
            write(text + "\n")
        }
    }

    private func redraw() {
        guard interactive else { return }
        lock.lock()
        defer { lock.unlock() }
        write("\r\u{1B}[K" + prompt + String(decoding: line, as: UTF8.self))
    }

    /// The next line typed (nil at Ctrl-D on an empty line, Ctrl-C, or end of input).
    func readLine() -> String? {
        guard interactive else { return Swift.readLine(strippingNewline: true) }
        redraw()
        var byte: UInt8 = 0
        while Glibc.read(0, &byte, 1) == 1 {
            switch byte {
            case 0x03:  // Ctrl-C
                return nil
            case 0x04:  // Ctrl-D
                lock.lock(); let empty = line.isEmpty; lock.unlock()
                if empty { return nil }
            case 0x0D, 0x0A:
                lock.lock()
                let text = String(decoding: line, as: UTF8.self)
                line.removeAll()
                write("\r\u{1B}[K")
                lock.unlock()
                return text
            case 0x7F, 0x08:  // backspace: drop one UTF-8 character
                lock.lock()
                while let last = line.popLast(), last & 0xC0 == 0x80 {}
                lock.unlock()
                redraw()
            case 0x15:  // Ctrl-U
                lock.lock(); line.removeAll(); lock.unlock()
                redraw()
            case 0x1B:  // an escape sequence (arrow keys…): skip it
                var next: UInt8 = 0
                if Glibc.read(0, &next, 1) == 1, next == UInt8(ascii: "[") {
                    while Glibc.read(0, &next, 1) == 1, !(0x40...0x7E).contains(next) {}
                }
            default:
                guard byte >= 0x20 || byte == 0x09 else { continue }
                // Echo what was typed, not the whole line again: a redraw per key is quadratic.
                lock.lock()
                line.append(byte)
                if byte < 0x80 {
                    write(String(UnicodeScalar(byte)))
                } else if byte >= 0xC0 {
                    pendingMultibyte = [byte]
                } else if !pendingMultibyte.isEmpty {
                    pendingMultibyte.append(byte)
                    if let character = String(validating: pendingMultibyte, as: UTF8.self) {
                        write(character)
                        pendingMultibyte = []
                    }
                }
                lock.unlock()
            }
        }
        return nil
    }
}
