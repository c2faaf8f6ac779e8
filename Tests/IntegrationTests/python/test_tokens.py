"""Revocable tokens (issue 12, item 4): logout and a password change revoke every earlier token
of the user — the Node server's too — and close their live sockets with a reason; revoked
tokens get 403 on REST and "Invalid token" on CONNECT, in this process and after a restart;
a token is refreshed without the password. python-socketio over both transports."""
import base64
import hashlib
import hmac
import json
import os
import time

import pytest
import requests

from conftest import Server
from test_socketio_chat import Inbox, connect, refused_connect

SECRET = "python-test-secret"  # conftest's JWT_SECRET


def node_token(user_id, lifetime=3600):
    """A token as the Node server's jsonwebtoken made it: {id, iat, exp}, no generation."""
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps({"id": user_id, "iat": now, "exp": now + lifetime}).encode())
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def login(server, email, password="password1"):
    return requests.post(server.url + "/api/auth/login", json={"email": email, "password": password}, timeout=10)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def watch_closing(client):
    closed = Inbox()
    client.on("session_closed", lambda data: closed.add("session_closed", data))
    client.on("disconnect", lambda *reason: closed.add("disconnect", reason))
    return closed


def test_logout_revokes_every_token_and_closes_every_socket_with_a_reason(server):
    user_id, email, phone_token = server.user("ann")
    laptop_token = login(server, email).json()["token"]
    from_node = node_token(user_id)
    phone, laptop = connect(server, phone_token, ["websocket"]), connect(server, laptop_token, ["polling"])
    old_node_socket = connect(server, from_node, ["websocket"])
    watching = [watch_closing(client) for client in (phone, laptop, old_node_socket)]
    try:
        for token in (phone_token, laptop_token, from_node):
            assert requests.get(server.url + "/api/conversations", headers=bearer(token), timeout=10).status_code == 200
        r = requests.post(server.url + "/api/auth/logout", headers=bearer(phone_token), timeout=10)
        assert r.status_code == 200 and r.json() == {"message": "Logged out"}, r.text
        for closed in watching:
            assert closed.wait(lambda: closed.of("disconnect"), timeout=10)
            assert closed.of("session_closed") == [{"reason": "logged out"}]
        for token in (phone_token, laptop_token, from_node):
            r = requests.get(server.url + "/api/conversations", headers=bearer(token), timeout=10)
            assert r.status_code == 403 and r.json() == {"message": "Invalid token"}, r.text
            for transport in (["websocket"], ["polling"]):
                inbox = Inbox()
                refused_connect(server, token, transport, inbox)
                assert inbox.of("connect_error") == [{"message": "Invalid token"}]
        # Logged out is not locked out: a new login works everywhere.
        fresh = login(server, email).json()["token"]
        assert requests.get(server.url + "/api/conversations", headers=bearer(fresh), timeout=10).status_code == 200
        connect(server, fresh, ["websocket"]).disconnect()
        # Logging out again with a revoked token is refused, not repeated.
        assert requests.post(server.url + "/api/auth/logout", headers=bearer(phone_token), timeout=10).status_code == 403
    finally:
        for client in (phone, laptop, old_node_socket):
            client.disconnect()


def test_other_users_are_untouched_by_a_logout(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    bob = connect(server, b_token, ["websocket"])
    try:
        assert requests.post(server.url + "/api/auth/logout", headers=bearer(a_token), timeout=10).status_code == 200
        time.sleep(0.3)
        assert bob.connected and bob.call("send_message", {"to": a_id, "message": "still here"}, timeout=10)["ok"]
    finally:
        bob.disconnect()


def test_changing_the_password_needs_the_old_one_and_revokes_everything_before(server):
    user_id, email, token = server.user("ann")
    socket = connect(server, token, ["websocket"])
    closed = watch_closing(socket)
    try:
        url = server.url + "/api/auth/password"
        r = requests.post(url, json={"old_password": "not it", "new_password": "password2"}, headers=bearer(token), timeout=10)
        assert r.status_code == 401 and r.json() == {"message": "old_password is not the current password"}, r.text
        r = requests.post(url, json={"old_password": "password1", "new_password": "short"}, headers=bearer(token), timeout=10)
        assert r.status_code == 400 and r.json() == {"error": "new_password must be at least 8 bytes"}, r.text
        r = requests.post(url, json={"new_password": "password2"}, headers=bearer(token), timeout=10)
        assert r.status_code == 400 and r.json() == {"error": "old_password is required"}, r.text
        assert requests.post(url, json={"old_password": "password1", "new_password": "password2"}, timeout=10).status_code == 401
        assert socket.connected  # nothing so far revoked anything
        r = requests.post(url, json={"old_password": "password1", "new_password": "password2"}, headers=bearer(token), timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["message"] == "Password changed" and body["user"]["id"] == user_id and body["token"]
        assert closed.wait(lambda: closed.of("disconnect"), timeout=10)
        assert closed.of("session_closed") == [{"reason": "password changed"}]
        assert requests.get(server.url + "/api/conversations", headers=bearer(token), timeout=10).status_code == 403
        assert requests.get(server.url + "/api/conversations", headers=bearer(body["token"]), timeout=10).status_code == 200
        assert login(server, email, "password1").status_code == 401
        assert login(server, email, "password2").status_code == 200
    finally:
        socket.disconnect()


def test_a_token_is_refreshed_without_the_password_and_keeps_its_revocation(server):
    user_id, _, token = server.user("ann")
    url = server.url + "/api/auth/refresh"
    r = requests.post(url, headers=bearer(token), timeout=10)
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["expires_at"] >= time.time() + 3500
    claims = json.loads(base64.urlsafe_b64decode(fresh["token"].split(".")[1] + "=="))
    assert claims["id"] == user_id and claims["exp"] == fresh["expires_at"] and claims["gen"] == 0 and claims["auth_time"] <= claims["iat"]
    assert requests.get(server.url + "/api/conversations", headers=bearer(fresh["token"]), timeout=10).status_code == 200
    assert requests.post(url, headers=bearer(node_token(user_id)), timeout=10).status_code == 200  # the Node server's too
    assert requests.post(url, timeout=10).status_code == 401
    assert requests.post(url, headers=bearer("not.a.token"), timeout=10).status_code == 403
    assert requests.get(url, headers=bearer(token), timeout=10).status_code == 405
    assert requests.post(server.url + "/api/auth/logout", headers=bearer(fresh["token"]), timeout=10).status_code == 200
    for revoked in (token, fresh["token"]):
        r = requests.post(url, headers=bearer(revoked), timeout=10)
        assert r.status_code == 403 and r.json() == {"message": "Invalid token"}


def test_a_revocation_outlives_the_process(database):
    first = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        user_id, email, token = first.user("ann")
        assert requests.post(first.url + "/api/auth/logout", headers=bearer(token), timeout=10).status_code == 200
        fresh = login(first, email).json()["token"]
    finally:
        assert first.stop() == 0
    second = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        assert requests.get(second.url + "/api/conversations", headers=bearer(token), timeout=10).status_code == 403
        inbox = Inbox()
        refused_connect(second, token, ["websocket"], inbox)
        assert inbox.of("connect_error") == [{"message": "Invalid token"}]
        assert requests.get(second.url + "/api/conversations", headers=bearer(fresh), timeout=10).status_code == 200
    finally:
        assert second.stop() == 0, "".join(second.output)


def test_a_well_signed_token_of_a_user_who_is_not_there_is_refused_and_the_server_stays(server):
    # Signed with the server's secret, naming no user of this database (one deleted, or a
    # token from another deployment with the same secret): refused like a revoked one — an
    # empty answer from the database once crashed the server here.
    import uuid
    stranger = node_token(str(uuid.uuid4()))
    assert requests.get(server.url + "/api/conversations", headers=bearer(stranger), timeout=10).status_code == 403
    inbox = Inbox()
    refused_connect(server, stranger, ["websocket"], inbox)
    assert inbox.of("connect_error") == [{"message": "Invalid token"}]
    assert requests.get(server.url + "/livez", timeout=10).status_code == 200
    assert server.process.poll() is None, "".join(server.output)
