"""Connection caps (issue 12, item 3): per user (Socket.IO CONNECT refused with a message), per
client address open at once and new per second (the Engine.IO handshake answered 429 with a
reason and Retry-After, over both transports); existing connections are untouched and a
released connection makes room. Each cap is crossed on a server of its own with small values;
the shipped per-user cap (20) on the default server."""
import os
import time

import pytest
import requests
import websocket

from conftest import Server
from test_socketio_chat import Inbox, connect, refused_connect


def caps_server(database, **settings):
    return Server(os.environ["CHAT_SERVER_BIN"], database, {key: str(value) for key, value in settings.items()})


def polling_handshake(server):
    return requests.get(server.url + "/socket.io/", params={"EIO": "4", "transport": "polling"}, timeout=10)


def websocket_handshake_status(server):
    """The HTTP status of a WebSocket handshake (101 when it opened), and the body of a refusal."""
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket", timeout=10)
        ws.close()
        return 101, None
    except websocket.WebSocketBadStatusException as refusal:
        return refusal.status_code, refusal.resp_body


def test_the_shipped_cap_of_20_sockets_per_user(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    sockets = [connect(server, a_token, ["websocket"]) for _ in range(20)]
    try:
        inbox = Inbox()
        refused_connect(server, a_token, ["websocket"], inbox)
        assert inbox.of("connect_error") == [{"message": "too many connections for this user (20 open); close one first"}]
        bob = connect(server, b_token, ["websocket"])  # another user is not counted with ann
        assert all(s.connected for s in sockets)
        assert sockets[0].call("send_message", {"to": b_id, "message": "the 20 still work"}, timeout=10)["ok"]
        sockets.pop().disconnect()
        deadline = time.monotonic() + 5
        while True:  # the server counts the socket out as soon as it hears of the disconnect
            try:
                sockets.append(connect(server, a_token, ["polling"]))
                break
            except Exception:
                assert time.monotonic() < deadline, "no room after a disconnect"
                time.sleep(0.1)
        bob.disconnect()
    finally:
        for s in sockets:
            s.disconnect()


def test_open_connections_per_address_are_capped_on_both_transports(database):
    server = caps_server(database, CONNECTIONS_PER_ADDRESS=4)
    try:
        users = [server.user(f"u{n}") for n in range(3)]
        open_ones = [connect(server, token, ["websocket" if n % 2 else "polling"]) for n, (_, _, token) in enumerate(users)]
        open_ones.append(connect(server, users[0][2], ["websocket"]))
        r = polling_handshake(server)
        assert r.status_code == 429 and r.headers["Retry-After"] == "5", r.text
        assert r.json() == {"code": 429, "message": "too many connections from this address (4 open); close one first"}
        status, body = websocket_handshake_status(server)
        assert status == 429 and b"too many connections from this address" in body
        # The open ones are untouched.
        assert open_ones[0].call("send_message", {"to": users[1][0], "message": "still fine"}, timeout=10)["ok"]
        open_ones.pop().disconnect()
        deadline = time.monotonic() + 5
        while polling_handshake(server).status_code != 200:
            assert time.monotonic() < deadline, "no room after a disconnect"
            time.sleep(0.1)
        for client in open_ones:
            client.disconnect()
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_new_connections_per_address_spend_a_burst_then_the_rate(database):
    server = caps_server(database, NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND=1)  # a burst of 10
    try:
        statuses = [polling_handshake(server).status_code for _ in range(10)]
        assert statuses == [200] * 10
        r = polling_handshake(server)
        assert r.status_code == 429 and r.headers["Retry-After"] == "1", r.text
        assert r.json()["message"] == "too many new connections from this address (1 a second); try again shortly"
        assert websocket_handshake_status(server)[0] == 429
        time.sleep(1.1)
        assert websocket_handshake_status(server)[0] == 101
        # Requests of a session that exists are not new connections: its polls pass.
        time.sleep(1.1)
        r = polling_handshake(server)
        assert r.status_code == 200
        session = {"EIO": "4", "transport": "polling", "sid": r.text[r.text.index('"sid":"') + 7:].split('"')[0]}
        for _ in range(3):
            assert requests.post(server.url + "/socket.io/", params=session, data="40", timeout=10).status_code == 200
            r = requests.get(server.url + "/socket.io/", params=session, timeout=10)
            assert r.status_code == 200 and "No token" in r.text, r.text
    finally:
        assert server.stop() == 0, "".join(server.output)
