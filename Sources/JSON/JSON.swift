// JSON: RFC 8259 on bytes. A strict parser (depth-limited, UTF-8 validated, refusing what
// JSON.parse refuses) into `JSONValue`, an order-keeping object, and a writer that escapes as
// JSON.stringify does, with member-by-member writing for packets built on the hot path.
//
// May import: nothing (the standard library only).
