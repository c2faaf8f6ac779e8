"""ALLOWED_ORIGINS (issue 12, item 5): pages of other origins are refused on every way in —
REST, CORS preflights, the Engine.IO handshake over polling, the WebSocket upgrade — with 403
and a JSON body; allowed origins get their own origin back in CORS answers; clients that send
no Origin (not pages) and the default setting see nothing change."""
import os

import pytest
import requests
import socketio
import websocket

from conftest import Server

ALLOWED = "https://chat.example.com"


@pytest.fixture(scope="module")
def guarded(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"ALLOWED_ORIGINS": f"{ALLOWED}, http://localhost:3000"})
    yield server
    assert server.stop() == 0, "".join(server.output)


def polling_handshake(server, origin=None):
    headers = {"Origin": origin} if origin else {}
    return requests.get(server.url + "/socket.io/", params={"EIO": "4", "transport": "polling"}, headers=headers, timeout=10)


def websocket_upgrade(server, origin=None):
    options = {"origin": origin} if origin else {"suppress_origin": True}
    return websocket.create_connection(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10, **options)


def test_a_refused_origin_gets_403_on_every_way_in(guarded):
    evil = "https://evil.example"
    _, _, token = guarded.user("ann")
    for response in (requests.get(guarded.url + "/api/conversations", headers={"Origin": evil, "Authorization": f"Bearer {token}"}, timeout=10),
                     requests.post(guarded.url + "/api/auth/login", json={"email": "x@y.z", "password": "p"}, headers={"Origin": evil}, timeout=10),
                     requests.options(guarded.url + "/api/auth/login", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}, timeout=10),
                     requests.options(guarded.url + "/socket.io/", headers={"Origin": evil}, timeout=10),
                     polling_handshake(guarded, evil)):
        assert response.status_code == 403, (response.request.method, response.request.url)
        assert response.json() == {"error": "origin https://evil.example is not allowed (ALLOWED_ORIGINS)"}
        assert "Access-Control-Allow-Origin" not in response.headers
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket_upgrade(guarded, evil)
    assert refused.value.status_code == 403
    # Near misses are other origins.
    for near in ("http://chat.example.com", "https://chat.example.com.evil.example", "null", "http://localhost:3001"):
        assert polling_handshake(guarded, near).status_code == 403, near
    # The official client's way in, from a refused page: no session.
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(guarded.url, auth={"token": token}, headers={"Origin": evil}, transports=["polling"], wait_timeout=5)


def test_an_allowed_origin_gets_its_own_origin_back_and_no_origin_passes(guarded):
    _, _, token = guarded.user("bob")
    for origin in (ALLOWED, "HTTPS://CHAT.EXAMPLE.COM", "http://localhost:3000"):
        r = requests.get(guarded.url + "/api/conversations", headers={"Origin": origin, "Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200
        assert r.headers["Access-Control-Allow-Origin"] == origin and "Origin" in r.headers["Vary"]
        handshake = polling_handshake(guarded, origin)
        assert handshake.status_code == 200 and handshake.headers["Access-Control-Allow-Origin"] == origin
    preflight = requests.options(guarded.url + "/api/auth/login", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}, timeout=10)
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == ALLOWED
    ws = websocket_upgrade(guarded, ALLOWED)
    assert ws.recv().startswith("0{")
    ws.close()
    # Not a page: curl, the terminal clients, python-socketio without an Origin.
    assert requests.get(guarded.url + "/api/conversations", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    ws = websocket_upgrade(guarded)
    assert ws.recv().startswith("0{")
    ws.close()
    client = socketio.Client(reconnection=False)
    client.connect(guarded.url, auth={"token": token}, headers={"Origin": ALLOWED}, transports=["polling", "websocket"], wait_timeout=10)
    assert client.connected
    client.disconnect()


def test_the_default_lets_every_page_in_as_the_node_server(server):
    r = polling_handshake(server, "https://anywhere.example")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert requests.get(server.url + "/healthz", headers={"Origin": "https://anywhere.example"}, timeout=10).headers["Access-Control-Allow-Origin"] == "*"
