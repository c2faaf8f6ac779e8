"""Conversations with unread counts and read watermarks (issue 11, items 1 and 2 in part), on the
real server and PostgreSQL, with python-socketio."""
import time

import pytest
import requests

from test_resume_and_sync import RecoveringClient, send_all, sync_rest
from test_socketio_chat import TRANSPORTS, connect


def get(server, token, path, **params):
    return requests.get(server.url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def post_read(server, token, peer, body):
    return requests.post(f"{server.url}/api/conversations/{peer}/read", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def listen(client, name="messages_read"):
    client.on(name, lambda data: client.inbox.add(name, data))
    return client


def test_conversations_newest_first_with_unread_counts_and_paging(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    ann, bob, carol = (connect(server, t, ["websocket"]) for t in (a_token, b_token, c_token))
    try:
        from_ann = send_all(ann, b_id, ["a1", "a2", "a3"])
        send_all(bob, a_id, ["b1"])
        send_all(carol, b_id, ["c1", "c2"])
        page = get(server, b_token, "/api/conversations").json()
        assert page["next"] is None
        assert [(c["peer"]["id"], c["peer"]["username"], c["last_message"]["message"], c["unread"]) for c in page["conversations"]] == \
               [(c_id, "carol", "c2", 2), (a_id, "ann", "b1", 3)]
        assert page["conversations"][1]["last_message"]["from"] == b_id
        assert set(page["conversations"][0]) == {"peer", "last_message", "unread", "read_up_to", "peer_read_up_to"}
        first = get(server, b_token, "/api/conversations", limit=1).json()
        assert [c["peer"]["id"] for c in first["conversations"]] == [c_id] and first["next"]
        second = get(server, b_token, "/api/conversations", limit=1, after=first["next"]).json()
        assert [c["peer"]["id"] for c in second["conversations"]] == [a_id]
        assert get(server, b_token, "/api/conversations", limit=1, after=second["next"]).json() == {"conversations": [], "next": None}
        # Ann's side: bob's one message unread.
        assert [(c["peer"]["id"], c["unread"]) for c in get(server, a_token, "/api/conversations").json()["conversations"]] == [(b_id, 1)]
        assert from_ann[2]["ok"]
    finally:
        for client in (ann, bob, carol):
            client.disconnect()


def test_mark_read_moves_the_watermark_forward_and_tells_both_sides(server):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    d_id, _, _ = server.user("dave")
    ann = listen(connect(server, a_token, ["websocket"]))
    bob_phone, bob_laptop = listen(connect(server, b_token, ["websocket"])), listen(connect(server, b_token, ["polling"]))
    carol = connect(server, c_token, ["websocket"])
    try:
        acks = send_all(ann, b_id, ["a1", "a2", "a3"])
        other = send_all(carol, b_id, ["not this conversation"])[0]
        answer = bob_phone.call("mark_read", {"with": a_id, "up_to": acks[1]["id"]}, timeout=10)
        # The receipt takes a place in both streams, after every message so far.
        assert answer == {"ok": True, "read_up_to": acks[1]["cursor"], "moved": True, "unread": 1, "cursor": answer["cursor"]}
        assert position(answer["cursor"]) > position(other["cursor"])
        expected = {"reader": b_id, "peer": a_id, "up_to": acks[1]["cursor"], "cursor": answer["cursor"]}
        for device in (ann, bob_laptop):
            assert device.inbox.wait(lambda: device.inbox.of("messages_read"))
            assert device.inbox.of("messages_read") == [expected]
        assert bob_phone.inbox.of("messages_read") == []  # it has its ack
        # Backwards is ignored; the answer says where the watermark is.
        assert bob_phone.call("mark_read", {"with": a_id, "up_to": acks[0]["cursor"]}, timeout=10) == \
               {"ok": True, "read_up_to": acks[1]["cursor"], "moved": False, "unread": 1}
        # Refusals.
        for request, error in [({"with": a_id, "up_to": other["id"]}, "up_to must be the id of a message in this conversation or a cursor"),
                               ({"with": a_id, "up_to": "c" + "z" * 10}, "up_to is ahead of this conversation's last message"),
                               ({"with": a_id, "up_to": "yesterday"}, "up_to must be the id of a message in this conversation or a cursor"),
                               ({"with": "bob", "up_to": acks[2]["id"]}, "with must be a user id (UUID)"),
                               ({"with": d_id, "up_to": acks[2]["id"]}, "no conversation with that user")]:
            assert bob_phone.call("mark_read", request, timeout=10) == {"ok": False, "error": error}, request
        # Over REST, to the end: everyone hears, the unread count is 0.
        r = post_read(server, b_token, a_id, {"up_to": acks[2]["id"]})
        assert r.status_code == 200 and r.json() == {"read_up_to": acks[2]["cursor"], "moved": True, "unread": 0, "cursor": r.json()["cursor"]}
        assert position(r.json()["cursor"]) > position(answer["cursor"])
        for device in (ann, bob_phone, bob_laptop):
            assert device.inbox.wait(lambda: {"reader": b_id, "peer": a_id, "up_to": acks[2]["cursor"], "cursor": r.json()["cursor"]}
                                     in device.inbox.of("messages_read"))
        listed = {c["peer"]["id"]: c for c in get(server, b_token, "/api/conversations").json()["conversations"]}
        assert listed[a_id]["unread"] == 0 and listed[a_id]["read_up_to"] == acks[2]["cursor"]
        # Ann's list says how far bob read hers.
        ann_list = {c["peer"]["id"]: c for c in get(server, a_token, "/api/conversations").json()["conversations"]}
        assert ann_list[b_id]["peer_read_up_to"] == acks[2]["cursor"] and ann_list[b_id]["read_up_to"] != acks[2]["cursor"]
        assert listed[c_id]["unread"] == 1
        assert post_read(server, b_token, d_id, {"up_to": acks[2]["id"]}).status_code == 404
        assert post_read(server, b_token, a_id, {}).status_code == 400
        assert requests.post(f"{server.url}/api/conversations/{a_id}/read", json={"up_to": acks[2]["id"]}, timeout=10).status_code == 401
        assert get(server, b_token, "/api/conversations", limit="x").status_code == 400
        assert get(server, b_token, "/api/conversations", after="nope").status_code == 400
    finally:
        for client in (ann, bob_phone, bob_laptop, carol):
            client.disconnect()


def position(cursor):
    return int(cursor[1:], 36)


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_receipts_missed_while_away_come_back_on_resume_and_in_sync(server, mode):
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    bob = RecoveringClient(b_token, TRANSPORTS[mode]).connect(server.url)
    try:
        sent = send_all(bob.client, a_id, ["one", "two", "three"])
        before_drop = sent[-1]["cursor"]
        bob.drop()
        # While bob is away ann reads his messages in two steps, then answers.
        first = ann.call("mark_read", {"with": b_id, "up_to": sent[1]["id"]}, timeout=10)
        second = ann.call("mark_read", {"with": b_id, "up_to": sent[2]["cursor"]}, timeout=10)
        assert first["moved"] and second["moved"] and position(second["cursor"]) > position(first["cursor"])
        reply = send_all(ann, b_id, ["read them"])[0]

        bob.connect(server.url)
        assert bob.recovered
        assert bob.events.wait(lambda: bob.of("receive_message") and bob.of("messages_read"))
        time.sleep(0.3)
        # The conversation's latest receipt, then the message after it, each with its offset.
        replayed = [(name, data) for name, (data, _, _) in bob.events.events if name in ("messages_read", "receive_message")]
        assert replayed == [("messages_read", {"reader": a_id, "peer": b_id, "up_to": sent[2]["cursor"], "cursor": second["cursor"]}),
                            ("receive_message", replayed[1][1])]
        assert replayed[1][1]["id"] == reply["id"]
        assert bob.offsets("messages_read") == [second["cursor"]] and bob.offset == reply["cursor"]

        # The same from the sync API, for bob (ann read his) and for ann's other devices (she read).
        events = sync_rest(server, b_token, after=before_drop).json()["events"]
        assert [(e["type"], e["cursor"]) for e in events] == [("read", second["cursor"]), ("message", reply["cursor"])]
        assert events[0] == {"type": "read", "cursor": second["cursor"], "reader": a_id, "peer": b_id, "up_to": sent[2]["cursor"]}
        mine = sync_rest(server, a_token, after=before_drop).json()["events"]
        assert mine[0] == {"type": "read", "cursor": second["cursor"], "reader": a_id, "peer": b_id, "up_to": sent[2]["cursor"]}
        # Paged one event at a time, the receipt is a page of its own and `next` moves past it.
        page = sync_rest(server, b_token, after=before_drop, limit=1).json()
        assert [e["type"] for e in page["events"]] == ["read"] and page["next"] == second["cursor"] and page["more"]
    finally:
        for client in (ann, bob.client):
            if client:
                client.disconnect()


def test_the_list_is_right_when_one_peer_wrote_everything_lately(server):
    """The list walks the newest messages for the last message of each conversation; when one
    peer fills that walk, it reads and sorts the user's rows instead: the same pages."""
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    c_id, _, c_token = server.user("carol")
    d_id, _, d_token = server.user("dave")
    ann, bob, carol, dave = (connect(server, t, ["websocket"]) for t in (a_token, b_token, c_token, d_token))
    try:
        send_all(carol, a_id, ["from carol"])
        send_all(dave, a_id, ["from dave"])
        # 120 messages with bob: more than a walk for a page of one reads (54 of each index), so
        # the second page is read the other way.
        send_all(bob, a_id, [f"bob {n}" for n in range(60)])
        send_all(ann, b_id, [f"ann {n}" for n in range(60)])
        pages, after = [], None
        while True:
            params = {"limit": 1} | ({"after": after} if after else {})
            page = get(server, a_token, "/api/conversations", **params).json()
            pages += [(c["peer"]["id"], c["last_message"]["message"], c["unread"]) for c in page["conversations"]]
            after = page["next"]
            if not after:
                break
        assert pages == [(b_id, "ann 59", 60), (d_id, "from dave", 1), (c_id, "from carol", 1)]
        whole = get(server, a_token, "/api/conversations").json()["conversations"]
        assert [(c["peer"]["id"], c["unread"]) for c in whole] == [(b_id, 60), (d_id, 1), (c_id, 1)]
    finally:
        for client in (ann, bob, carol, dave):
            client.disconnect()


def test_both_people_reading_at_once_keep_both_watermarks(server):
    """Receipts wait a moment for company, so two people reading each other at once go in one
    statement: each conversation row must keep both sides."""
    a_id, _, a_token = server.user("ann")
    b_id, _, b_token = server.user("bob")
    ann, bob = connect(server, a_token, ["websocket"]), connect(server, b_token, ["websocket"])
    try:
        from_ann = send_all(ann, b_id, ["hi bob"])[0]
        from_bob = send_all(bob, a_id, ["hi ann"])[0]
        answers = {}
        ann.emit("mark_read", {"with": b_id, "up_to": from_bob["id"]}, callback=lambda r: answers.__setitem__("ann", r))
        bob.emit("mark_read", {"with": a_id, "up_to": from_ann["id"]}, callback=lambda r: answers.__setitem__("bob", r))
        deadline = time.time() + 10
        while len(answers) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert answers["ann"]["moved"] and answers["bob"]["moved"], answers
        for token, peer, mine, theirs in ((a_token, b_id, from_bob, from_ann), (b_token, a_id, from_ann, from_bob)):
            row = get(server, token, "/api/conversations").json()["conversations"][0]
            assert row["peer"]["id"] == peer
            assert (row["read_up_to"], row["peer_read_up_to"], row["unread"]) == (mine["cursor"], theirs["cursor"], 0)
            reads = [e for e in sync_rest(server, token, after=from_bob["cursor"]).json()["events"] if e["type"] == "read"]
            assert {(e["reader"], e["up_to"]) for e in reads} == {(a_id, from_bob["cursor"]), (b_id, from_ann["cursor"])}, reads
    finally:
        ann.disconnect()
        bob.disconnect()
