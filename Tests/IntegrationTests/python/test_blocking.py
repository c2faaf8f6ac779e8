"""Blocking (issue 12, item 6), with python-socketio over both transports and REST: a blocked
user's messages to the blocker are refused with a neutral error and not stored, typing and
presence do not cross a block, unblocking restores everything, and nothing changes for others."""
import os
import time

import pytest
import requests

from conftest import Server, psql
from test_socketio_chat import Inbox, connect
from test_typing import listen_typing


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def block(server, token, target, method="POST"):
    return requests.request(method, f"{server.url}/api/users/{target}/block", headers=bearer(token), timeout=10)


def stored(server, sender, receiver):
    return int(psql(server.database_url, f"SELECT count(*) FROM messages WHERE sender_id = '{sender}' AND receiver_id = '{receiver}'"))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_blocked_users_messages_are_refused_neutrally_and_not_stored(server, transport):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    ann, bob, carol = (connect(server, token, [transport]) for token in (a_token, b_token, c_token))
    try:
        assert bob.call("send_message", {"to": a_id, "message": "before"}, timeout=10)["ok"]
        r = block(server, a_token, b_id)
        assert r.status_code == 200 and r.json() == {"user": b_id, "blocked": True}, r.text
        refused = bob.call("send_message", {"to": a_id, "message": "let me in"}, timeout=10)
        assert refused == {"ok": False, "error": "the message could not be delivered"}  # nothing says "blocked"
        bob.emit("send_message", {"to": a_id, "message": "no ack"})
        assert bob.inbox.wait(lambda: bob.inbox.of("message_error"))
        assert bob.inbox.of("message_error")[0] == {"to": a_id, "message": "no ack", "error": "the message could not be delivered"}
        # The blocker cannot message the blocked user either, and is told why.
        assert ann.call("send_message", {"to": b_id, "message": "hm"}, timeout=10) == \
            {"ok": False, "error": "you have blocked this user: unblock them to send messages"}
        time.sleep(0.3)
        assert stored(server, b_id, a_id) == 1 and stored(server, a_id, b_id) == 0
        assert [m["message"] for m in ann.inbox.of("receive_message")] == ["before"]
        # Others are not affected: carol and bob, carol and ann.
        assert carol.call("send_message", {"to": a_id, "message": "hi ann"}, timeout=10)["ok"]
        assert bob.call("send_message", {"to": c_id, "message": "hi carol"}, timeout=10)["ok"]
        # Unblocked, bob's messages arrive again.
        r = block(server, a_token, b_id, "DELETE")
        assert r.status_code == 200 and r.json() == {"user": b_id, "blocked": False}
        assert bob.call("send_message", {"to": a_id, "message": "after"}, timeout=10)["ok"]
        assert ann.inbox.wait(lambda: [m["message"] for m in ann.inbox.of("receive_message")][-1:] == ["after"])
    finally:
        for client in (ann, bob, carol):
            client.disconnect()


def test_typing_and_presence_do_not_cross_a_block(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann = listen_typing(connect(server, a_token, ["websocket"]))
    bob = listen_typing(connect(server, b_token, ["websocket"]))
    for client in (ann, bob):
        client.on("presence", (lambda c: lambda data: c.inbox.add("presence", data))(client))
    try:
        assert ann.call("send_message", {"to": b_id, "message": "we talked"}, timeout=10)["ok"]
        assert block(server, a_token, b_id).status_code == 200
        # Typing either way: acknowledged as usual, relayed to nobody.
        assert bob.call("typing", {"to": a_id, "typing": True}, timeout=10) == {"ok": True}
        assert ann.call("typing", {"to": b_id, "typing": True}, timeout=10) == {"ok": True}
        # Presence: ann comes and goes; bob is told nothing, and asking shows her offline, never seen.
        phone = connect(server, a_token, ["polling"])
        phone.disconnect()
        time.sleep(0.5)
        assert ann.inbox.of("typing") == [] and bob.inbox.of("typing") == []
        r = requests.get(f"{server.url}/api/users/{a_id}/presence", headers=bearer(b_token), timeout=10)
        assert r.status_code == 200 and r.json() == {"user": a_id, "online": False, "last_seen": None}, r.text
        r = requests.get(f"{server.url}/api/users/{b_id}/presence", headers=bearer(a_token), timeout=10)
        assert r.json()["online"] is False and r.json()["last_seen"] is None
        ann.disconnect()
        time.sleep(6)  # past the presence grace period (5 s)
        assert bob.inbox.of("presence") == [], bob.inbox.of("presence")
        # Unblocked: typing and presence flow again.
        assert block(server, a_token, b_id, "DELETE").status_code == 200
        assert bob.call("typing", {"to": a_id, "typing": True}, timeout=10) == {"ok": True}
        ann = listen_typing(connect(server, a_token, ["websocket"]))
        r = requests.get(f"{server.url}/api/users/{a_id}/presence", headers=bearer(b_token), timeout=10)
        assert r.json()["online"] is True
    finally:
        ann.disconnect()
        bob.disconnect()


def test_the_block_list_and_its_refusals(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, _ = server.user("bob")
    c_id, _, _ = server.user("carol")
    assert requests.get(server.url + "/api/blocks", headers=bearer(a_token), timeout=10).json() == {"blocked": []}
    for target in (c_id, b_id):
        assert block(server, a_token, target).status_code == 200
    listed = requests.get(server.url + "/api/blocks", headers=bearer(a_token), timeout=10).json()["blocked"]
    assert [entry["user"]["id"] for entry in listed] == [c_id, b_id]  # oldest block first
    assert listed[0]["user"]["username"] == "carol" and listed[0]["since"].endswith("Z")
    cases = [(a_id, 400, "you cannot block yourself"), ("not-a-user", 400, "the user id must be a UUID"),
             ("00000000-0000-4000-8000-0000000000ff", 404, "User not found")]
    for target, status, error in cases:
        r = block(server, a_token, target)
        assert r.status_code == status and r.json() == {"error": error}, (target, r.text)
    assert requests.get(f"{server.url}/api/users/{b_id}/block", headers=bearer(a_token), timeout=10).status_code == 405
    assert requests.post(f"{server.url}/api/users/{b_id}/block", timeout=10).status_code == 401
    assert requests.post(server.url + "/api/blocks", headers=bearer(a_token), timeout=10).status_code == 405


def test_blocks_outlive_the_process(database):
    first = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        a_id, _, a_token = first.user("ann")
        b_id, _, b_token = first.user("bob")
        assert block(first, a_token, b_id).status_code == 200
    finally:
        assert first.stop() == 0
    second = Server(os.environ["CHAT_SERVER_BIN"], database)
    bob = None
    try:
        bob = connect(second, b_token, ["websocket"])
        # The new process reads the blocks once it has started: until then a message is refused
        # as worth retrying (never let through), which a loaded machine can show.
        deadline = time.monotonic() + 10
        while True:
            answer = bob.call("send_message", {"to": a_id, "message": "after a restart"}, timeout=10)
            if answer != {"ok": False, "error": "the message could not be stored; try again"} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer == {"ok": False, "error": "the message could not be delivered"}
    finally:
        if bob:
            bob.disconnect()
        assert second.stop() == 0, "".join(second.output)
