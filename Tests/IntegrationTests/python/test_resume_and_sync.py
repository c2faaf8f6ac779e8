"""Never missing a message (issue 10), driven by python-socketio over both transports:
socket.io's connection state recovery backed by PostgreSQL (the pid of the CONNECT reply, the
offset ending each event, `{pid, offset}` in the CONNECT auth of a reconnect), the sync API,
own messages on every device and idempotent send by client_id."""
import os
import signal
import socket
import threading
import time
import uuid

import pytest
import requests
import socketio

from conftest import Server, psql
from test_socketio_chat import TRANSPORTS, Inbox, connect

STREAM_EVENTS = ("receive_message", "own_message", "message_sent", "messages_read")


class RecoveringClient:
    """What the official socket.io JavaScript client does for recovery, on python-socketio
    (which has no such feature): keep the CONNECT reply's pid and the last event's offset (its
    last argument when that is a string), and reconnect with both in the CONNECT auth. Events
    of a dropped connection still being dispatched are ignored, as they would be lost."""

    def __init__(self, token, transports, ask=True):
        self.token = token
        self.transports = transports
        self.ask = ask
        self.pid = None
        self.offset = None
        self.recovered = None
        self.connect_data = None
        self.events = Inbox()  # (name, data, offset)
        self.generation = 0
        self.lock = threading.Lock()
        self.client = None

    def connect(self, url, **auth_extra):
        client = socketio.Client(reconnection=False)
        original = client._handle_connect

        def handle_connect(namespace, data):
            self.connect_data = data or {}
            original(namespace, data)

        client._handle_connect = handle_connect
        # python-engineio hands each message to a thread of its own, so handlers may run out
        # of the order the packets came in — and an offset taken from a later event could be
        # overwritten by an earlier one. The socket.io client handles packets in order: so here.
        trigger = client.eio._trigger_event

        def in_order(event, *args, **kwargs):
            if event == "message":
                kwargs["run_async"] = False
            return trigger(event, *args, **kwargs)

        client.eio._trigger_event = in_order
        with self.lock:
            self.generation += 1
            generation = self.generation
        for name in STREAM_EVENTS + ("message_error",):
            client.on(name, (lambda name: lambda *args: self._event(generation, name, args))(name))
        auth = {"token": self.token}
        if self.ask:
            auth["recover"] = True
        if self.pid:
            auth["pid"] = self.pid
            if self.offset:
                auth["offset"] = self.offset
        auth.update(auth_extra)
        client.connect(url, auth=auth, transports=self.transports, wait_timeout=10)
        new_pid = self.connect_data.get("pid")
        self.recovered = self.pid is not None and new_pid == self.pid
        self.pid = new_pid
        self.client = client
        return self

    def _event(self, generation, name, args):
        with self.lock:
            if generation != self.generation:
                return
            offset = args[-1] if len(args) > 1 and isinstance(args[-1], str) else None
            if offset and self.pid:
                self.offset = offset
            self.events.add(name, (args[0] if args else None, offset, len(args)))

    def drop(self):
        """The connection vanishes: over WebSocket the TCP socket is shut (no close packet);
        over polling the client stops (the server times the session out later)."""
        with self.lock:
            self.generation += 1
        client, self.client = self.client, None
        if client.eio.current_transport == "websocket":
            client.eio.ws.sock.shutdown(socket.SHUT_RDWR)
        client.disconnect()

    def of(self, name):
        return [data for data, _, _ in self.events.of(name)]

    def offsets(self, name):
        return [offset for _, offset, _ in self.events.of(name)]


def cursor(seq):
    digits = ""
    while seq:
        seq, digit = divmod(seq, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return "c" + (digits or "0")


def stream_ids_to(database, user_id, after_seq=0):
    """Ids of the messages to `user_id` in sequence order, from the database itself."""
    text = psql(database, f"SELECT id FROM messages WHERE receiver_id = '{user_id}' AND seq > {after_seq} ORDER BY seq")
    return text.split() if text else []


def send_all(client, to, texts, client_ids=None):
    """Sends each text with an ack, waits for every ack, returns them in order."""
    acks = Inbox()
    for n, text in enumerate(texts):
        payload = {"to": to, "message": text}
        if client_ids:
            payload["client_id"] = client_ids[n]
        client.emit("send_message", payload, callback=(lambda n: lambda result: acks.add(n, result))(n))
    assert acks.wait(lambda: len(acks.events) == len(texts), timeout=30), len(acks.events)
    return [acks.of(n)[0] for n in range(len(texts))]


def sync_rest(server, token, after=None, limit=None):
    params = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
    return requests.get(server.url + "/api/sync", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_a_dropped_connection_resumes_with_every_missed_message_once_in_order(server, mode):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    _, _, c_token = server.user("carol")
    d_id, _, _ = server.user("dave")
    ann = connect(server, a_token, ["websocket"])
    carol = connect(server, c_token, ["websocket"])
    bob = RecoveringClient(b_token, TRANSPORTS[mode]).connect(server.url)
    try:
        assert bob.pid and not bob.recovered
        first = send_all(ann, b_id, [f"before {n}" for n in range(3)])
        assert bob.events.wait(lambda: len(bob.of("receive_message")) == 3)
        # Each event ends with its offset, the same cursor its payload carries.
        assert bob.offsets("receive_message") == [ack["cursor"] for ack in first]
        assert [m["cursor"] for m in bob.of("receive_message")] == [ack["cursor"] for ack in first]

        bob.drop()
        missed = send_all(ann, b_id, [f"missed {n}" for n in range(20)])
        send_all(carol, d_id, [f"not bob's {n}" for n in range(5)])

        old_pid = bob.pid
        bob.connect(server.url)
        assert bob.recovered and bob.pid == old_pid
        assert bob.events.wait(lambda: len(bob.of("receive_message")) >= 23)
        live = send_all(ann, b_id, ["live after the resume"])
        assert bob.events.wait(lambda: len(bob.of("receive_message")) == 24)
        time.sleep(0.3)
        received = bob.of("receive_message")
        assert [m["id"] for m in received] == [ack["id"] for ack in first + missed + live]
        assert [m["message"] for m in received[3:23]] == [f"missed {n}" for n in range(20)]
        assert all(m["from"] == a_id for m in received)
    finally:
        for client in (ann, carol, bob.client):
            if client:
                client.disconnect()


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_resumes_while_messages_keep_committing_lose_and_double_nothing(server, database, mode):
    _, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    bob = RecoveringClient(b_token, TRANSPORTS[mode]).connect(server.url)
    acks = Inbox()
    total = 900

    def keep_sending():
        for n in range(total):
            ann.emit("send_message", {"to": b_id, "message": f"flow {n}"}, callback=lambda result: acks.add("ack", result))
            if n % 50 == 0:
                time.sleep(0.02)

    sender = threading.Thread(target=keep_sending)
    try:
        sender.start()
        for round_ in range(1, 4):  # drop and resume in the middle of the flow, three times
            assert acks.wait(lambda: len(acks.of("ack")) >= 150 * round_, timeout=30)
            bob.drop()
            time.sleep(0.05)
            bob.connect(server.url)
            assert bob.recovered
        sender.join()
        assert acks.wait(lambda: len(acks.of("ack")) == total, timeout=30)
        assert all(ack["ok"] for ack in acks.of("ack"))
        expected = stream_ids_to(database, b_id)
        assert len(expected) == total
        assert bob.events.wait(lambda: len(bob.of("receive_message")) >= total, timeout=20), len(bob.of("receive_message"))
        time.sleep(0.3)
        assert [m["id"] for m in bob.of("receive_message")] == expected
    finally:
        sender.join()
        ann.disconnect()
        if bob.client:
            bob.client.disconnect()


def test_resume_and_resend_across_a_kill_9(database):
    """The server dies under load: the sender resends what was not acknowledged with the same
    client_id, the receiver resumes on a new server process. Every message is stored once and
    reaches the receiver once, in order."""
    first = Server(os.environ["CHAT_SERVER_BIN"], database)
    a_id, _, a_token = first.user("ann")
    b_id, _, b_token = first.user("bob")
    texts = [f"tunnel {n}" for n in range(400)]
    client_ids = [str(uuid.uuid4()) for _ in texts]
    acks = Inbox()
    try:
        ann = connect(first, a_token, ["websocket"])
        bob = RecoveringClient(b_token, ["websocket"]).connect(first.url)
        for n, text in enumerate(texts):
            ann.emit("send_message", {"to": b_id, "message": text, "client_id": client_ids[n]},
                     callback=(lambda n: lambda result: acks.add(n, result))(n))
        assert acks.wait(lambda: len(acks.events) >= 50, timeout=20)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop(signal.SIGKILL)
    acknowledged_before = {n for n, result in acks.events if result.get("ok")}
    second = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        ann2 = connect(second, a_token, ["websocket"])
        again = send_all(ann2, b_id, texts, client_ids)  # everything again: repeats store nothing
        for n, ack in enumerate(again):
            assert ack["ok"], ack
            if n in acknowledged_before:
                original = acks.of(n)[0]
                assert (ack["id"], ack["timestamp"], ack["cursor"], ack.get("repeat")) == \
                       (original["id"], original["timestamp"], original["cursor"], True)
        assert psql(database, f"SELECT count(*) FROM messages WHERE sender_id = '{a_id}'") == str(len(texts))
        assert psql(database, f"SELECT count(DISTINCT client_id) FROM messages WHERE sender_id = '{a_id}'") == str(len(texts))
        bob.connect(second.url)
        assert bob.recovered
        expected = stream_ids_to(database, b_id)
        assert bob.events.wait(lambda: len(bob.of("receive_message")) >= len(expected), timeout=20)
        time.sleep(0.3)
        assert [m["id"] for m in bob.of("receive_message")] == expected
        assert sorted(m["message"] for m in bob.of("receive_message")) == sorted(texts)
        ann2.disconnect()
        bob.client.disconnect()
    finally:
        assert second.stop() == 0, "".join(second.output)


def test_beyond_the_replay_bound_the_session_starts_afresh_and_sync_pages(server):
    _, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    bob = RecoveringClient(b_token, ["websocket"]).connect(server.url)
    try:
        send_all(ann, b_id, ["seen"])
        assert bob.events.wait(lambda: len(bob.of("receive_message")) == 1)
        bob.drop()
        send_all(ann, b_id, [f"many {n}" for n in range(1001)])
        old_pid, offset = bob.pid, bob.offset
        bob.connect(server.url)
        assert not bob.recovered and bob.pid and bob.pid != old_pid
        time.sleep(0.5)
        assert len(bob.of("receive_message")) == 1  # no burst
        # The client pages instead.
        page = sync_rest(server, b_token, after=offset, limit=1000).json()
        assert len(page["events"]) == 1000 and page["more"] is True
        rest = sync_rest(server, b_token, after=page["next"], limit=1000).json()
        assert [e["message"] for e in rest["events"]] == ["many 1000"] and rest["more"] is False
        assert [e["message"] for e in page["events"]] == [f"many {n}" for n in range(1000)]
    finally:
        ann.disconnect()
        bob.client.disconnect()


def test_untrusted_pids_and_offsets_are_not_recovered(server):
    _, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    ann = connect(server, a_token, ["websocket"])
    carol = RecoveringClient(c_token, ["websocket"]).connect(server.url)
    bob = RecoveringClient(b_token, ["websocket"]).connect(server.url)
    try:
        send_all(ann, c_id, ["for carol only"])
        send_all(ann, b_id, ["for bob"])
        assert bob.events.wait(lambda: len(bob.of("receive_message")) == 1)
        start = bob.pid
        head = bob.offset
        cases = [
            {"pid": carol.pid},  # another user's session
            {"pid": start[:-1] + ("0" if start[-1] != "0" else "1")},  # tampered
            {"pid": "not-a-pid"}, {"pid": "c0.0000000000000000." + "0" * 24}, {"pid": "x" * 5000},
            {"pid": start, "offset": "zzz"}, {"pid": start, "offset": "c" + "z" * 12},  # malformed, far ahead
            {"pid": start, "offset": cursor(int(head[1:], 36) + 10**9)},  # ahead of the stream
        ]
        for extra in cases:
            probe = RecoveringClient(b_token, ["websocket"])
            probe.connect(server.url, **extra)
            assert probe.connect_data.get("pid") and probe.connect_data["pid"] != extra["pid"], extra
            time.sleep(0.2)
            assert probe.of("receive_message") == [], extra
            probe.client.disconnect()
        # The real pid with an older offset of one's own still works.
        fine = RecoveringClient(b_token, ["websocket"])
        fine.connect(server.url, pid=start, offset="c0")
        assert fine.connect_data["pid"] == start
        assert fine.events.wait(lambda: fine.of("receive_message"))
        assert [m["message"] for m in fine.of("receive_message")] == ["for bob"]
        fine.client.disconnect()
    finally:
        for client in (ann, carol.client, bob.client):
            client.disconnect()


def test_a_connection_that_did_not_ask_sees_todays_events(server):
    _, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    plain = RecoveringClient(b_token, ["polling", "websocket"], ask=False).connect(server.url)
    try:
        assert "pid" not in plain.connect_data
        send_all(ann, b_id, ["one argument"])
        assert plain.events.wait(lambda: plain.events.of("receive_message"))
        [(data, offset, arguments)] = plain.events.of("receive_message")
        assert arguments == 1 and offset is None and data["message"] == "one argument"
    finally:
        ann.disconnect()
        plain.client.disconnect()


def test_connection_state_recovery_for_every_socket_is_a_setting(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"CONNECTION_STATE_RECOVERY": "true"})
    try:
        _, _, a_token = server.user("ann")
        b_id, _, b_token = server.user("bob")
        # Every event gets its offset: handlers that take one argument would break (as with
        # socket.io's own option), so these clients take any number.
        ann = RecoveringClient(a_token, ["websocket"], ask=False).connect(server.url)
        bob = RecoveringClient(b_token, ["websocket"], ask=False).connect(server.url)
        assert bob.pid and ann.pid
        ack = send_all(ann.client, b_id, ["with an offset"])[0]
        assert bob.events.wait(lambda: bob.events.of("receive_message"))
        assert bob.offsets("receive_message") == [ack["cursor"]]
        assert ann.events.wait(lambda: ann.events.of("message_sent"))
        assert ann.offsets("message_sent") == [ack["cursor"]]
        ann.client.disconnect()
        bob.client.disconnect()
    finally:
        assert server.stop() == 0, "".join(server.output)
    bad = Server.__new__(Server)
    with pytest.raises(RuntimeError, match="CONNECTION_STATE_RECOVERY must be true or false"):
        Server.__init__(bad, os.environ["CHAT_SERVER_BIN"], database, {"CONNECTION_STATE_RECOVERY": "maybe"})


def test_what_one_device_sends_shows_on_the_others(server):
    a_id, _, a_token = server.user("ann")
    _, _, b_token = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    devices = [RecoveringClient(b_token, TRANSPORTS[mode]).connect(server.url) for mode in ("websocket", "polling", "upgrade")]
    phone, laptop, tablet = devices
    try:
        client_id = str(uuid.uuid4())
        ack = phone.client.call("send_message", {"to": a_id, "message": "from the phone", "client_id": client_id}, timeout=10)
        assert ack["ok"]
        for device in (laptop, tablet):
            assert device.events.wait(lambda: device.of("own_message"))
            assert device.of("own_message") == [{"to": a_id, "message": "from the phone", "id": ack["id"], "timestamp": ack["timestamp"],
                                                 "cursor": ack["cursor"], "client_id": client_id}]
            assert device.offsets("own_message") == [ack["cursor"]]
        assert phone.events.wait(lambda: phone.of("message_sent"))
        assert phone.offsets("message_sent") == [ack["cursor"]]
        assert phone.of("own_message") == []
        assert ann.inbox.wait(lambda: ann.inbox.of("receive_message"))
        assert "client_id" not in ann.inbox.of("receive_message")[0]  # the sender's, not the receiver's business
        # A device that was away gets it on resume, as own_message.
        laptop.drop()
        second = phone.client.call("send_message", {"to": a_id, "message": "while the laptop slept"}, timeout=10)
        laptop.connect(server.url)
        assert laptop.recovered
        assert laptop.events.wait(lambda: len(laptop.of("own_message")) == 2)
        assert laptop.of("own_message")[1]["id"] == second["id"]
    finally:
        ann.disconnect()
        for device in devices:
            if device.client:
                device.client.disconnect()


def test_the_same_client_id_stores_once_and_answers_the_same(server, database):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    first, second = connect(server, a_token, ["websocket"]), connect(server, a_token, ["polling"])
    bob = connect(server, b_token, ["websocket"])
    try:
        # Twice at once, from two connections of the sender.
        client_id = str(uuid.uuid4())
        answers = Inbox()
        for client in (first, second):
            client.emit("send_message", {"to": b_id, "message": "once", "client_id": client_id}, callback=lambda r: answers.add("ack", r))
        assert answers.wait(lambda: len(answers.of("ack")) == 2)
        one, two = answers.of("ack")
        assert one["ok"] and two["ok"]
        assert (one["id"], one["timestamp"], one["cursor"]) == (two["id"], two["timestamp"], two["cursor"])
        assert sorted(bool(a.get("repeat")) for a in (one, two)) == [False, True]
        assert psql(database, f"SELECT count(*) FROM messages WHERE client_id = '{client_id}'") == "1"
        time.sleep(0.3)
        assert [m["id"] for m in bob.inbox.of("receive_message")] == [one["id"]]

        # Again after a reconnect, in upper case: the same answer, nothing stored.
        first.disconnect()
        first = connect(server, a_token, ["websocket"])
        again = first.call("send_message", {"to": b_id, "message": "once", "client_id": client_id.upper()}, timeout=10)
        assert (again["id"], again["timestamp"], again["repeat"]) == (one["id"], one["timestamp"], True)
        assert psql(database, f"SELECT count(*) FROM messages WHERE client_id = '{client_id}'") == "1"

        # Another sender's client_id is theirs.
        carol = connect(server, c_token, ["websocket"])
        theirs = carol.call("send_message", {"to": b_id, "message": "carol's", "client_id": client_id}, timeout=10)
        assert theirs["ok"] and theirs["id"] != one["id"] and "repeat" not in theirs
        carol.disconnect()

        for bad in ("not-a-uuid", 42, "", {"id": client_id}):
            refused = first.call("send_message", {"to": b_id, "message": "bad id", "client_id": bad}, timeout=10)
            assert refused == {"ok": False, "error": "client_id must be a UUID"}, bad
        first.emit("send_message", {"to": b_id, "message": "bad id", "client_id": "nope"})
        assert first.inbox.wait(lambda: first.inbox.of("message_error"))
        assert first.inbox.of("message_error")[0]["error"] == "client_id must be a UUID"
        assert psql(database, f"SELECT count(*) FROM messages WHERE content = 'bad id'") == "0"
    finally:
        for client in (first, second, bob):
            client.disconnect()


def test_sync_pages_the_whole_stream_over_socketio_and_rest(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    _, _, c_token = server.user("carol")
    d_id, _, _ = server.user("dave")
    ann, carol = connect(server, a_token, ["websocket"]), connect(server, c_token, ["websocket"])
    bob = connect(server, b_token, ["polling"])
    try:
        send_all(ann, b_id, ["a1", "a2"])
        from_bob = send_all(bob, d_id, ["b1"])
        send_all(carol, b_id, ["c1"])
        send_all(carol, d_id, ["not in bob's stream"])
        send_all(carol, b_id, ["c2"])

        events, after, pages = [], None, 0
        while True:
            answer = bob.call("sync", {"after": after, "limit": 2}, timeout=10)
            assert answer["ok"], answer
            events += answer["events"]
            after, pages = answer["next"], pages + 1
            if not answer["more"]:
                break
        assert pages == 3
        assert [(e["to"], e["message"]) for e in events] == [(b_id, "a1"), (b_id, "a2"), (d_id, "b1"), (b_id, "c1"), (b_id, "c2")]
        assert [e["type"] for e in events] == ["message"] * 5
        assert events[2]["from"] == b_id and events[2]["id"] == from_bob[0]["id"]
        assert [e["cursor"] for e in events] == sorted((e["cursor"] for e in events), key=lambda c: int(c[1:], 36))
        # Up to date: nothing new, the same cursor.
        assert bob.call("sync", {"after": after}, timeout=10) == {"ok": True, "events": [], "next": after, "more": False}

        rest = sync_rest(server, b_token, limit=100)
        assert rest.status_code == 200 and rest.headers["Access-Control-Allow-Origin"] == "*"
        assert rest.json()["events"] == events and rest.json()["next"] == after and rest.json()["more"] is False
        assert sync_rest(server, b_token, after=events[1]["cursor"]).json()["events"] == events[2:]

        for bad, reason in (("zzz", "after must be a cursor this server gave"), ("c" + "z" * 10, "after is ahead")):
            r = sync_rest(server, b_token, after=bad)
            assert r.status_code == 400 and r.json()["error"].startswith(reason), r.text
            answer = bob.call("sync", {"after": bad}, timeout=10)
            assert answer["ok"] is False and answer["error"].startswith(reason)
        assert sync_rest(server, b_token, limit="ten").status_code == 400
        assert bob.call("sync", {"limit": "ten"}, timeout=10) == {"ok": False, "error": "limit must be a whole number"}
        assert bob.call("sync", {"after": 5}, timeout=10)["ok"] is False
        assert requests.get(server.url + "/api/sync", timeout=10).status_code == 401
        assert sync_rest(server, "not.a.token").status_code == 403
        assert requests.post(server.url + "/api/sync", timeout=10).status_code == 405
        bob.emit("sync", {})  # without an ack: told how to ask
        assert bob.inbox.wait(lambda: bob.inbox.of("sync_error"))

        # History bounds take cursors too.
        history = requests.get(f"{server.url}/api/messages/{a_id}", params={"before": events[1]["cursor"]},
                               headers={"Authorization": f"Bearer {b_token}"}, timeout=10).json()
        assert [m["content"] for m in history] == ["a1"] and history[0]["cursor"] == events[0]["cursor"]
    finally:
        for client in (ann, carol, bob):
            client.disconnect()
