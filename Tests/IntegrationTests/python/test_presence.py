"""Presence (issue 11, item 4): online while a socket is connected, offline after a grace
period, told to the people one has a conversation with, flapping absorbed, last_seen stored."""
import os
import time

import pytest
import requests

from conftest import Server, psql
from test_socketio_chat import connect


@pytest.fixture(scope="module")
def quick(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"PRESENCE_GRACE_SECONDS": "1"})
    yield server
    assert server.stop() == 0, "".join(server.output)


def listen(client):
    client.on("presence", lambda data: client.inbox.add("presence", data))
    return client


def lookup(server, token, user):
    return requests.get(f"{server.url}/api/users/{user}/presence", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_contacts_see_online_then_offline_with_last_seen(quick, database):
    a_id, _, a_token = quick.user("ann")
    b_id, _, b_token = quick.user("bob")
    _, _, c_token = quick.user("carol")
    ann = connect(quick, a_token, ["websocket"])
    assert ann.call("send_message", {"to": b_id, "message": "hi"}, timeout=10)["ok"]  # bob is a contact now
    ann.disconnect()
    bob = listen(connect(quick, b_token, ["polling"]))
    carol = listen(connect(quick, c_token, ["websocket"]))
    try:
        time.sleep(1.5)  # ann's first session is over
        bob.inbox.events.clear()
        ann = connect(quick, a_token, ["websocket"])
        assert bob.inbox.wait(lambda: bob.inbox.of("presence"))
        online = bob.inbox.of("presence")[0]
        assert online["user"] == a_id and online["online"] is True
        assert lookup(quick, b_token, a_id).json()["online"] is True
        ann.disconnect()
        assert bob.inbox.wait(lambda: len(bob.inbox.of("presence")) == 2, timeout=5)
        offline = bob.inbox.of("presence")[1]
        assert offline["user"] == a_id and offline["online"] is False and offline["last_seen"].endswith("Z")
        answer = lookup(quick, b_token, a_id).json()
        assert answer == {"user": a_id, "online": False, "last_seen": offline["last_seen"]}
        time.sleep(1.5)  # written in a batch within a second
        assert psql(database, f"SELECT last_seen IS NOT NULL FROM users WHERE id = '{a_id}'") == "t"
        assert lookup(quick, b_token, a_id).json()["last_seen"] == offline["last_seen"]
        assert carol.inbox.of("presence") == []  # no conversation with ann: not told
    finally:
        for client in (ann, bob, carol):
            client.disconnect()


def test_a_flapping_connection_does_not_storm_contacts(quick):
    _, _, a_token = quick.user("ann")
    b_id, _, b_token = quick.user("bob")
    ann = connect(quick, a_token, ["websocket"])
    assert ann.call("send_message", {"to": b_id, "message": "hi"}, timeout=10)["ok"]
    bob = listen(connect(quick, b_token, ["websocket"]))
    try:
        for _ in range(8):  # reconnecting every 0.3 s, within the 1 s grace each time
            ann.disconnect()
            time.sleep(0.3)
            ann = connect(quick, a_token, ["websocket"])
        time.sleep(1.5)
        assert bob.inbox.of("presence") == []
    finally:
        ann.disconnect()
        bob.disconnect()


def test_presence_lookups_refuse_what_is_not_a_user(quick):
    _, _, token = quick.user("ann")
    assert lookup(quick, token, "00000000-0000-4000-8000-00000000dead").status_code == 404
    assert lookup(quick, token, "nobody").status_code == 400
    assert requests.get(f"{quick.url}/api/users/00000000-0000-4000-8000-00000000dead/presence", timeout=10).status_code == 401
    me = quick.user("never")[0]
    assert lookup(quick, token, me).json() == {"user": me, "online": False, "last_seen": None}


def test_who_is_still_connected_at_a_stop_is_last_seen_then(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    a_id, _, a_token = server.user("ann")
    ann = connect(server, a_token, ["websocket"])
    try:
        assert psql(database, f"SELECT last_seen IS NULL FROM users WHERE id = '{a_id}'") == "t"
    finally:
        assert server.stop() == 0, "".join(server.output)
        ann.disconnect()
    assert psql(database, f"SELECT last_seen IS NOT NULL FROM users WHERE id = '{a_id}'") == "t"
