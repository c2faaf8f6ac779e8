"""Typing (issue 11, item 3): ephemeral, relayed only to a peer's connected sockets, expiring by
itself, rate-limited per socket — with python-socketio over both transports."""
import time

from test_socketio_chat import connect


def listen_typing(client):
    client.on("typing", lambda data: client.inbox.add("typing", data))
    return client


def test_typing_reaches_every_socket_of_the_peer_and_only_them(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann, ann_laptop = connect(server, a_token, ["websocket"]), listen_typing(connect(server, a_token, ["polling"]))
    phone, laptop = listen_typing(connect(server, b_token, ["websocket"])), listen_typing(connect(server, b_token, ["polling"]))
    try:
        assert ann.call("send_message", {"to": b_id, "message": "hi"}, timeout=10)["ok"]  # a conversation
        assert ann.call("typing", {"to": b_id, "typing": True}, timeout=10) == {"ok": True}
        for device in (phone, laptop):
            assert device.inbox.wait(lambda: device.inbox.of("typing"))
            assert device.inbox.of("typing") == [{"from": a_id, "typing": True}]
        assert ann.call("typing", {"to": b_id, "typing": False}, timeout=10) == {"ok": True}
        assert phone.inbox.wait(lambda: len(phone.inbox.of("typing")) == 2)
        assert phone.inbox.of("typing")[1] == {"from": a_id, "typing": False}
        time.sleep(0.2)
        assert ann_laptop.inbox.of("typing") == []  # the typist's own devices are not told
    finally:
        for client in (ann, ann_laptop, phone, laptop):
            client.disconnect()


def test_typing_ends_by_itself_when_the_typist_vanishes_or_stops_repeating(server):
    _, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    bob = listen_typing(connect(server, b_token, ["websocket"]))
    try:
        assert ann.call("send_message", {"to": b_id, "message": "hi"}, timeout=10)["ok"]
        assert ann.call("typing", {"to": b_id, "typing": True}, timeout=10)["ok"]
        ann.disconnect()  # gone while typing
        assert bob.inbox.wait(lambda: len(bob.inbox.of("typing")) == 2, timeout=5)
        assert [t["typing"] for t in bob.inbox.of("typing")] == [True, False]

        ann = connect(server, a_token, ["polling"])
        assert ann.call("typing", {"to": b_id, "typing": True}, timeout=10)["ok"]
        started = time.monotonic()
        assert bob.inbox.wait(lambda: len(bob.inbox.of("typing")) == 4, timeout=10)
        assert bob.inbox.of("typing")[3]["typing"] is False
        assert 5 <= time.monotonic() - started <= 8  # a `true` lasts 6 s unless repeated
    finally:
        ann.disconnect()
        bob.disconnect()


def test_typing_to_strangers_to_oneself_or_malformed_is_refused_and_floods_are_dropped(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    ann = connect(server, a_token, ["websocket"])
    bob = listen_typing(connect(server, b_token, ["websocket"]))
    carol = listen_typing(connect(server, c_token, ["websocket"]))
    try:
        stranger = ann.call("typing", {"to": c_id, "typing": True}, timeout=10)
        assert stranger["ok"] is False and stranger["error"].startswith("no conversation with that user")
        ann.emit("typing", {"to": c_id, "typing": True})  # without an ack: ignored
        for payload, error in [({"to": a_id, "typing": True}, "typing to yourself is not relayed"),
                               ({"to": "nobody", "typing": True}, "to must be a user id (UUID)"),
                               ({"to": b_id, "typing": "yes"}, "typing must be true or false"),
                               ("not an object", "to must be a user id (UUID)")]:
            assert ann.call("typing", payload, timeout=10) == {"ok": False, "error": error}, payload
        time.sleep(1.5)  # the bucket refills
        assert ann.call("send_message", {"to": b_id, "message": "now we talk"}, timeout=10)["ok"]
        answers = []
        for _ in range(40):
            ann.emit("typing", {"to": b_id, "typing": True}, callback=lambda r: answers.append(r))
        deadline = time.monotonic() + 10
        while len(answers) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        relayed = [a for a in answers if a.get("ok")]
        dropped = [a for a in answers if not a.get("ok")]
        assert 8 <= len(relayed) <= 12 and dropped and all(a["error"] == "too many typing events; slow down" for a in dropped), answers
        time.sleep(0.3)
        assert len(bob.inbox.of("typing")) == len(relayed)
        assert carol.inbox.of("typing") == []
    finally:
        for client in (ann, bob, carol):
            client.disconnect()
