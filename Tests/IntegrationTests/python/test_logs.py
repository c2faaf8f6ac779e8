"""Logs worth reading (issue 14): at info a line per REST request (method, path, status,
duration, client, user, request id) and per Socket.IO connection and disconnection;
LOG_FORMAT=json gives one JSON object a line; no line ever holds a token, a password, an
email address from a query or a message's text."""
import json
import os
import re
import socket
import time
import uuid

import requests
import socketio

from conftest import Server

PASSWORD = "correct horse battery"
SECRET_TEXT = "the-launch-code-is-" + uuid.uuid4().hex


def records(server):
    """Every record the server wrote to standard error, parsed (json format); the first line
    is the stdout line the fixture reads the port from."""
    lines = [line for line in server.output[1:] if line.strip()]
    parsed = []
    for line in lines:
        record = json.loads(line)  # every line must be one JSON object
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), line
        parsed.append(record)
    return parsed


def wait_for(server, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in records(server) if predicate(r)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("no such record in:\n" + "".join(server.output))


def register_and_login(server, name):
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    r = requests.post(server.url + "/api/auth/register", json={"username": name, "email": email, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(server.url + "/api/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["user"]["id"], email, r.json()["token"]


def test_json_lines_for_requests_and_connections_without_secrets(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"LOG_LEVEL": "info", "LOG_FORMAT": "json"})
    try:
        alice, alice_email, alice_token = register_and_login(server, "alice")
        bob, _, bob_token = register_and_login(server, "bob")

        # A request id from a proxy in front is kept and answered; without one, one is made.
        mine = "edge-" + uuid.uuid4().hex
        r = requests.get(server.url + "/api/users", params={"email": alice_email},
                         headers={"Authorization": f"Bearer {bob_token}", "X-Request-Id": mine}, timeout=10)
        assert r.status_code == 200 and r.headers["X-Request-Id"] == mine
        made = requests.get(server.url + "/livez", timeout=10).headers["X-Request-Id"]
        assert made and made != mine
        # One that could break a log line is replaced.
        odd = requests.get(server.url + "/livez", headers={"X-Request-Id": "a b\tc"}, timeout=10).headers["X-Request-Id"]
        assert odd != "a b\tc" and re.fullmatch(r"[0-9a-f]{15}", odd)
        assert requests.get(server.url + "/api/sync", headers={"Authorization": "Bearer not-a-token"}, timeout=10).status_code == 403

        # A chat over WebSocket and one over polling, with a message whose text must not be logged.
        received = []
        receiver = socketio.Client(reconnection=False)
        receiver.on("receive_message", lambda data: received.append(data))
        receiver.connect(server.url, auth={"token": bob_token}, transports=["polling"], wait_timeout=10)
        sender = socketio.Client(reconnection=False)
        sender.connect(server.url, auth={"token": alice_token}, transports=["websocket"], wait_timeout=10)
        ack = sender.call("send_message", {"to": bob, "message": SECRET_TEXT}, timeout=10)
        assert ack["ok"] is True, ack
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert received and received[0]["message"] == SECRET_TEXT
        sender.disconnect()
        receiver.disconnect()
        refused = socketio.Client(reconnection=False)
        try:
            refused.connect(server.url, auth={"token": "forged"}, transports=["websocket"], wait_timeout=3)
        except socketio.exceptions.ConnectionError:
            pass
        # (python-socketio's polling client leaves without a word: bob's session ends at the stop.)
        wait_for(server, lambda r: r["message"] == "disconnected" and r.get("user") == alice)
        wait_for(server, lambda r: r["message"] == "connect refused")
    finally:
        assert server.stop() == 0, "".join(server.output)

    logged = records(server)
    http = [r for r in logged if r["message"] == "request"]
    by_path = lambda method, path: [r for r in http if r["method"] == method and r["path"] == path]

    # Every request has its fields; the user where it is known.
    for r in http:
        assert r["logger"] == "chat.http" and r["level"] == "info"
        assert isinstance(r["status"], int) and isinstance(r["duration_ms"], (int, float)) and r["duration_ms"] >= 0
        assert r["client"] == "127.0.0.1" and r["request_id"] and isinstance(r["bytes"], int)
    logins = by_path("POST", "/api/auth/login")
    assert {r["user"] for r in logins} == {alice, bob} and all(r["status"] == 200 for r in logins)
    [lookup] = by_path("GET", "/api/users")
    assert (lookup["status"], lookup["user"], lookup["request_id"]) == (200, bob, mine)
    [forged] = by_path("GET", "/api/sync")
    assert forged["status"] == 403 and "user" not in forged
    assert made in {r["request_id"] for r in by_path("GET", "/livez")}
    # The transport's own requests are below info: their connections have their lines.
    assert not [r for r in http if r["path"].startswith("/socket.io")]

    connected = [r for r in logged if r["message"] == "connected"]
    assert {(r["user"], r["transport"]) for r in connected} == {(alice, "websocket"), (bob, "polling")}
    assert all(r["logger"] == "chat.socketio" and r["sid"] and r["client"] == "127.0.0.1" for r in connected)
    gone = {r["user"]: r for r in logged if r["message"] == "disconnected" and "user" in r}
    # (Which the server sees first, the client's DISCONNECT or the socket closing, is the client's race.)
    assert gone[alice]["reason"] in ("client namespace disconnect", "transport close"), gone[alice]
    assert gone[bob]["reason"] in ("client namespace disconnect", "transport close", "server shutting down"), gone[bob]
    assert gone[alice]["transport"] == "websocket" and gone[bob]["transport"] == "polling" and gone[bob]["duration_ms"] >= 0
    [refusal] = [r for r in logged if r["message"] == "connect refused"]
    assert refusal["reason"] == "Invalid token" and refusal["transport"] == "websocket"
    assert any(r["message"] == "listening" and r["url"] == server.url for r in logged)
    assert logged[-1]["message"] == "stopped"

    # Nothing secret anywhere: not the tokens, the password, the message, nor the email that
    # was in a query string.
    everything = "".join(server.output)
    for secret in (alice_token, bob_token, PASSWORD, SECRET_TEXT, alice_email, "forged"):
        assert secret not in everything, secret


def test_text_lines_by_default_and_the_transport_at_debug(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"LOG_LEVEL": "debug"})
    try:
        assert requests.get(server.url + "/livez", headers={"X-Request-Id": "trace-1"}, timeout=10).status_code == 200
        requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=10)
        # A request that never reaches a handler: malformed, refused by the connection itself.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("refused" in line for line in server.output):
            time.sleep(0.05)
    finally:
        assert server.stop() == 0, "".join(server.output)
    lines = server.output[1:]
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|notice|warning|error|critical) chat\.[a-z]+: \S")
    assert all(shape.match(line) for line in lines), "".join(lines)
    [livez] = [line for line in lines if "path=/livez" in line]
    assert re.search(r" info chat\.http: request method=GET path=/livez status=200 duration_ms=[0-9.e-]+ bytes=15 client=127\.0\.0\.1 request_id=trace-1$", livez), livez
    assert any(" debug chat.http: request method=GET path=/socket.io/ status=200 " in line for line in lines), "".join(lines)
    assert any(re.search(r" info chat\.http: refused status=400 client=127\.0\.0\.1 reason=", line) for line in lines), "".join(lines)
    assert any(re.search(r' debug chat\.socketio: session opened client=127\.0\.0\.1 sid=\S+ transport=polling request_id=', line) for line in lines)
    assert any(re.search(r' debug chat\.socketio: session closed duration_ms=\d+ client=127\.0\.0\.1 sid=\S+ transport=polling reason="server shutting down"', line)
               for line in lines), "".join(lines)
