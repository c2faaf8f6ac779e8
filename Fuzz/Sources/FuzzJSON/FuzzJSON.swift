// The JSON parser and writer (Sources/JSON). Invariants:
// - what parses was valid UTF-8 (RFC 8259 §8.1), whatever the parser saw of it;
// - parse → write → parse gives an equal value, and writing that gives the same bytes: the
//   writer's output is valid JSON, and canonical;
// - the writer's output is ASCII-compatible UTF-8 without raw control characters;
// - a shallower depth limit only ever refuses more, and a refusal points inside the input.
import FuzzSupport
import JSON

func depth(_ value: JSONValue) -> Int {
    switch value {
    case .array(let elements): return 1 + (elements.map(depth).max() ?? 0)
    case .object(let object): return 1 + (object.members.map { depth($0.value) }.max() ?? 0)
    default: return 0
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let input = inputBytes(start, count)
    let value: JSONValue
    do {
        value = try JSONParser.parse(input)
    } catch {
        require(error.offset >= 0 && error.offset <= input.count, "error offset \(error.offset) of \(input.count) bytes")
        require(!error.reason.isEmpty, "a refusal without a reason")
        return 0
    }
    require(String(validating: input, as: UTF8.self) != nil, "accepted invalid UTF-8")
    let levels = depth(value)
    require(levels <= JSONParser.defaultMaxDepth, "a value \(levels) deep")
    if levels > 0 {
        require((try? JSONParser.parse(input, maxDepth: levels - 1)) == nil, "accepted \(levels) levels with a limit of \(levels - 1)")
    }

    let written = JSONWriter.bytes(value)
    require(String(validating: written, as: UTF8.self) != nil, "the writer wrote invalid UTF-8")
    require(!written.contains { $0 < 0x20 }, "the writer wrote a raw control character")
    let again: JSONValue
    do {
        again = try JSONParser.parse(written)
    } catch {
        fail("the writer's \(String(decoding: written, as: UTF8.self).debugDescription) does not parse: \(error)")
    }
    require(again == value, "\(value) is written and parsed as \(again)")
    require(JSONWriter.bytes(again) == written, "\(value) is written differently the second time")
    require(JSONWriter.string(value).utf8.elementsEqual(written), "string and bytes disagree")
    return 0
}
