"""The chat over Socket.IO, driven by python-socketio (an independent client), over
WebSocket only, polling only, and the default polling-then-upgrade."""
import os
import signal
import threading
import time
import uuid

import pytest
import socketio

from conftest import Server, psql

TRANSPORTS = {"websocket": ["websocket"], "polling": ["polling"], "upgrade": ["polling", "websocket"]}


class Inbox:
    """Collects events; wait() blocks until a condition holds (bounded)."""

    def __init__(self):
        self.events = []
        self.condition = threading.Condition()

    def add(self, name, data):
        with self.condition:
            self.events.append((name, data))
            self.condition.notify_all()

    def of(self, name):
        with self.condition:
            return [data for event, data in self.events if event == name]

    def wait(self, predicate, timeout=10):
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.condition.wait(remaining)
            return True


def connect(server, token, transports, inbox=None, auth=True, url_token=False, wait_timeout=10):
    client = socketio.Client(reconnection=False)
    inbox = inbox or Inbox()
    for event in ("receive_message", "message_sent", "own_message", "message_error", "sync_error", "connect_error"):
        client.on(event, (lambda name: lambda data=None: inbox.add(name, data))(event))
    url = server.url + (f"?token={token}" if url_token else "")
    client.connect(url, auth={"token": token} if auth else None, transports=transports, wait_timeout=wait_timeout)
    client.inbox = inbox
    return client


def refused_connect(server, token, transports, inbox, auth=True):
    """A connect the server must refuse: python-socketio raises ConnectionError, and inbox gets
    the connect_error. python-socketio 5.11 raises only once wait_timeout passes without news
    *after* the CONNECT_ERROR, so the usual 10 s cost 10 s per refusal. A short wait_timeout
    first; only if the refusal had not even arrived by then (a loaded machine) once more with
    the usual 10 s, so a slow answer is not mistaken for a missing one."""
    for wait_timeout in (0.5, 10):
        with pytest.raises(socketio.exceptions.ConnectionError):
            connect(server, token, transports, inbox, auth=auth, wait_timeout=wait_timeout)
        if inbox.of("connect_error"):
            return


@pytest.mark.parametrize("mode", TRANSPORTS)
def test_two_users_chat_with_acks(server, mode):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    a = connect(server, a_token, TRANSPORTS[mode])
    b = connect(server, b_token, TRANSPORTS[mode])
    try:
        ack = a.call("send_message", {"to": b_id, "message": f"hello over {mode} ✓"}, timeout=10)
        assert ack["ok"] is True and ack["id"] and ack["timestamp"].endswith("Z")
        assert b.inbox.wait(lambda: b.inbox.of("receive_message"))
        received = b.inbox.of("receive_message")[0]
        # Part 1's fields as the Node server sent them, and the stream cursor beside them.
        assert received == {"from": a_id, "message": f"hello over {mode} ✓", "timestamp": ack["timestamp"], "id": ack["id"],
                            "cursor": ack["cursor"]}
        assert a.inbox.wait(lambda: a.inbox.of("message_sent"))
        assert a.inbox.of("message_sent")[0]["to"] == b_id
        assert a.inbox.of("message_sent")[0]["message"] == f"hello over {mode} ✓"

        b.emit("send_message", {"to": a_id, "message": "and back"})  # no ack: message_sent only
        assert a.inbox.wait(lambda: a.inbox.of("receive_message"))
        assert a.inbox.of("receive_message")[0]["from"] == b_id
        assert b.inbox.wait(lambda: b.inbox.of("message_sent"))
        if mode != "polling":
            assert a.transport() == "websocket"
    finally:
        a.disconnect()
        b.disconnect()


def test_every_device_of_the_receiver_gets_it(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    a = connect(server, a_token, ["websocket"])
    phone = connect(server, b_token, ["websocket"])
    laptop = connect(server, b_token, ["polling"])
    tablet = connect(server, b_token, ["polling", "websocket"])
    try:
        ack = a.call("send_message", {"to": b_id, "message": "to all of bob"}, timeout=10)
        for device in (phone, laptop, tablet):
            assert device.inbox.wait(lambda: device.inbox.of("receive_message"))
            assert device.inbox.of("receive_message") == [{"from": a_id, "message": "to all of bob", "timestamp": ack["timestamp"],
                                                           "id": ack["id"], "cursor": ack["cursor"]}]
        assert a.inbox.of("receive_message") == []
    finally:
        for client in (a, phone, laptop, tablet):
            client.disconnect()


def test_an_offline_receiver_finds_the_message_in_history(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    a = connect(server, a_token, ["websocket"])
    try:
        ack = a.call("send_message", {"to": b_id, "message": "while you were out"}, timeout=10)
        assert ack["ok"]
    finally:
        a.disconnect()
    history = server.history(b_token, a_id)
    assert [(m["id"], m["sender_id"], m["receiver_id"], m["content"], m["created_at"]) for m in history] == \
        [(ack["id"], a_id, b_id, "while you were out", ack["timestamp"])]


@pytest.mark.parametrize("mode", ["websocket", "upgrade"])
def test_authentication_errors(server, mode):
    _, _, token = server.user("ann")
    for auth_token, message in ((None, "No token"), ("not-a-jwt", "Invalid token"), (token[:-2] + "xx", "Invalid token")):
        inbox = Inbox()
        if auth_token is None:
            refused_connect(server, "", TRANSPORTS[mode], inbox, auth=False)
        else:
            refused_connect(server, auth_token, TRANSPORTS[mode], inbox)
        assert inbox.wait(lambda: inbox.of("connect_error"))
        assert inbox.of("connect_error")[0]["message"] == message
    # The Node server also takes the token from the handshake URL.
    client = connect(server, token, TRANSPORTS[mode], auth=False, url_token=True)
    assert client.connected
    client.disconnect()


def test_refusals_keep_the_connection_and_store_nothing(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    a = connect(server, a_token, ["websocket"])
    try:
        stranger = str(uuid.uuid4())
        cases = [
            ({"to": "bob", "message": "hi"}, "to must be a user id (UUID)"),
            ({"to": b_id, "message": ""}, "message must not be empty"),
            ({"to": b_id, "message": "   "}, "message must not be empty"),
            ({"to": b_id, "message": 42}, "message must be a string"),
            ({"to": b_id, "message": "x" * 16385}, "message must be at most 16384 bytes"),
            ({"to": b_id}, "message must be a string"),
            ("just a string", "payload must be an object {to, message}"),
            ({"to": stranger, "message": "hello?"}, f"no user with id {stranger}"),
        ]
        for payload, error in cases:
            assert a.call("send_message", payload, timeout=10) == {"ok": False, "error": error}, payload
        a.emit("send_message", {"to": b_id, "message": ""})
        assert a.inbox.wait(lambda: a.inbox.of("message_error"))
        assert a.inbox.of("message_error")[0] == {"to": b_id, "message": "", "error": "message must not be empty"}
        assert a.call("send_message", {"to": b_id, "message": "x" * 16384}, timeout=10)["ok"], "the limit itself is fine"
        assert a.connected
        assert [m["content"] for m in server.history(a_token, b_id)] == ["x" * 16384]
    finally:
        a.disconnect()


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_a_burst_of_1000_is_delivered_once_in_order_and_stored(server, mode):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    a = connect(server, a_token, TRANSPORTS[mode])
    b = connect(server, b_token, TRANSPORTS[mode])
    acks = Inbox()
    try:
        for n in range(1000):
            a.emit("send_message", {"to": b_id, "message": f"burst {n}"}, callback=lambda result: acks.add("ack", result))
        assert acks.wait(lambda: len(acks.of("ack")) == 1000, timeout=60), len(acks.of("ack"))
        assert all(ack["ok"] for ack in acks.of("ack"))
        assert b.inbox.wait(lambda: len(b.inbox.of("receive_message")) >= 1000, timeout=60), len(b.inbox.of("receive_message"))
        time.sleep(0.3)  # anything extra would show up now
        received = [m["message"] for m in b.inbox.of("receive_message")]
        assert received == [f"burst {n}" for n in range(1000)]
        assert len({m["id"] for m in b.inbox.of("receive_message")}) == 1000
        stored = []
        for offset in range(0, 1000, 100):
            stored += [m["content"] for m in server.history(b_token, a_id, limit=100, offset=offset)]
        assert stored == received
    finally:
        a.disconnect()
        b.disconnect()


def test_an_acknowledged_message_survives_kill_9(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        a_id, _, a_token = server.user("ann")
        b_id, _, _ = server.user("bob")
        a = connect(server, a_token, ["websocket"])
        ack = a.call("send_message", {"to": b_id, "message": "durable"}, timeout=10)
        assert ack["ok"]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    finally:
        server.stop(signal.SIGKILL)
    assert psql(database, f"SELECT content FROM messages WHERE id = '{ack['id']}'") == "durable"


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_a_graceful_stop_acknowledges_everything_it_stored(database, mode):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        a_id, _, a_token = server.user("ann")
        b_id, _, _ = server.user("bob")
        a = connect(server, a_token, TRANSPORTS[mode])
        acks = Inbox()
        for n in range(300):
            a.emit("send_message", {"to": b_id, "message": f"stop {n}"}, callback=lambda result: acks.add("ack", result))
        assert acks.wait(lambda: len(acks.of("ack")) >= 1)  # writes are flowing: stop in the middle of them
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        acks.wait(lambda: len(acks.of("ack")) == 300, timeout=5)
    finally:
        server.stop()
    acknowledged = {ack["id"] for ack in acks.of("ack") if ack.get("ok")}
    stored = set(psql(database, f"SELECT id FROM messages WHERE sender_id = '{a_id}'").split())
    assert stored and acknowledged == stored, (len(acknowledged), len(stored))
