"""Per-user rate limits on socket events (issue 12, item 2), with python-socketio over both
transports: a refused message is answered with retry_after_ms and not stored, the limit is the
user's across their sockets, other users are untouched, and a client that keeps pushing is
disconnected with a reason. The limits are set low here so each test crosses them quickly;
the defaults are crossed by one test of their own."""
import os
import threading
import time

import pytest
import socketio

from conftest import Server, psql
from test_socketio_chat import Inbox, connect

LIMITS = {"MESSAGE_BURST": "20", "MESSAGES_PER_SECOND": "5", "RECEIPT_BURST": "5", "RECEIPTS_PER_SECOND": "1",
          "OTHER_EVENT_BURST": "5", "OTHER_EVENTS_PER_SECOND": "1", "REFUSED_EVENTS_BEFORE_DISCONNECT": "30"}


@pytest.fixture(scope="module")
def limited(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, LIMITS)
    yield server
    assert server.stop() == 0, "".join(server.output)


def burst(client, count, payload, event="send_message"):
    """Emits `count` events without waiting, then waits for every ack (bounded)."""
    acks = Inbox()
    for n in range(count):
        client.emit(event, payload(n), callback=lambda result: acks.add("ack", result))
    assert acks.wait(lambda: len(acks.of("ack")) == count, timeout=30), len(acks.of("ack"))
    return acks.of("ack")


def stored_count(server, a_id, b_id):
    return int(psql(server.database_url, f"SELECT count(*) FROM messages WHERE sender_id = '{a_id}' AND receiver_id = '{b_id}'"))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_messages_past_the_burst_are_refused_with_a_retry_time_and_not_stored(limited, transport):
    a_id, _, a_token = limited.user("ann")
    b_id, _, b_token = limited.user("bob")
    c_id, _, c_token = limited.user("carol")
    ann, bob, carol = (connect(limited, token, [transport]) for token in (a_token, b_token, c_token))
    try:
        answers = burst(ann, 30, lambda n: {"to": b_id, "message": f"m{n}"})
        accepted = [a for a in answers if a["ok"]]
        refused = [a for a in answers if not a["ok"]]
        # 20 at once, and the 5/s refill gives at most a few more while the burst is sent.
        assert 20 <= len(accepted) <= 24 and refused, answers
        assert all(r["error"] == "too many messages; slow down" and 1 <= r["retry_after_ms"] <= 200 for r in refused), refused
        # Without an ack (the bucket still empty): message_error echoing what was sent, with the wait.
        for n in range(3):
            ann.emit("send_message", {"to": b_id, "message": "no ack"})
        assert ann.inbox.wait(lambda: ann.inbox.of("message_error"))
        error = ann.inbox.of("message_error")[0]
        assert error["to"] == b_id and error["message"] == "no ack" and error["error"] == "too many messages; slow down"
        assert error["retry_after_ms"] >= 1
        time.sleep(0.3)
        accepted_without_ack = 3 - len(ann.inbox.of("message_error"))
        assert stored_count(limited, a_id, b_id) == len(accepted) + accepted_without_ack
        assert len(bob.inbox.of("receive_message")) == len(accepted) + accepted_without_ack
        # Another user is not limited by ann's flood.
        assert carol.call("send_message", {"to": b_id, "message": "from carol"}, timeout=10)["ok"]
        # Waiting as told lets ann send again, and the connection stayed up.
        time.sleep(max(r["retry_after_ms"] for r in refused[-1:]) / 1000 + 0.25)
        assert ann.call("send_message", {"to": b_id, "message": "after waiting"}, timeout=10)["ok"]
        assert ann.connected
    finally:
        for client in (ann, bob, carol):
            client.disconnect()


def test_the_limit_is_the_users_across_their_sockets(limited):
    a_id, _, a_token = limited.user("ann")
    b_id, _, _ = limited.user("bob")
    phone, laptop = connect(limited, a_token, ["websocket"]), connect(limited, a_token, ["polling"])
    try:
        answers = burst(phone, 12, lambda n: {"to": b_id, "message": f"phone {n}"})
        answers += burst(laptop, 12, lambda n: {"to": b_id, "message": f"laptop {n}"})
        accepted = [a for a in answers if a["ok"]]
        assert 20 <= len(accepted) <= 23, answers  # not 24: a second socket is no second allowance
        assert stored_count(limited, a_id, b_id) == len(accepted)
    finally:
        phone.disconnect()
        laptop.disconnect()


def test_receipts_and_other_events_have_buckets_of_their_own(limited):
    a_id, _, a_token = limited.user("ann")
    b_id, _, b_token = limited.user("bob")
    ann, bob = connect(limited, a_token, ["websocket"]), connect(limited, b_token, ["websocket"])
    try:
        sent = ann.call("send_message", {"to": b_id, "message": "read me"}, timeout=10)
        reads = burst(bob, 8, lambda n: {"with": a_id, "up_to": sent["id"]}, event="mark_read")
        assert sum(1 for r in reads if r["ok"]) in (5, 6), reads
        assert all(r["error"] == "too many read receipts; slow down" and r["retry_after_ms"] >= 1 for r in reads if not r["ok"])
        syncs = burst(bob, 8, lambda n: {"limit": 1}, event="sync")
        assert sum(1 for r in syncs if r["ok"]) in (5, 6), syncs
        assert all(r["error"] == "too many events; slow down" for r in syncs if not r["ok"])
        # An unknown event counts as any other: with the bucket empty, it is refused (an
        # admitted one has no handler, so it would get no answer at all).
        assert bob.call("no_such_event", {}, timeout=10) == {"ok": False, "error": "too many events; slow down",
                                                             "retry_after_ms": pytest.approx(1000, abs=1000)}
        # Messages were not limited by any of that.
        assert bob.call("send_message", {"to": a_id, "message": "still fine"}, timeout=10)["ok"]
    finally:
        ann.disconnect()
        bob.disconnect()


def flood_until_disconnected(client, count, payload):
    """Emits `count` messages without waiting; returns the acks that came back and whether the
    server sent session_closed, once the connection is gone (bounded)."""
    closed = Inbox()
    client.on("session_closed", lambda data: closed.add("session_closed", data))
    client.on("disconnect", lambda *reason: closed.add("disconnect", reason))
    acks = Inbox()
    for n in range(count):
        try:
            client.emit("send_message", payload(n), callback=lambda result: acks.add("ack", result))
        except socketio.exceptions.BadNamespaceError:
            break  # already disconnected
    assert closed.wait(lambda: closed.of("disconnect"), timeout=30), "the flooding socket was not disconnected"
    return acks.of("ack"), closed.of("session_closed")


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_socket_that_keeps_pushing_is_disconnected_with_a_reason(limited, transport):
    a_id, _, a_token = limited.user("ann")
    b_id, _, b_token = limited.user("bob")
    ann, bob = connect(limited, a_token, [transport]), connect(limited, b_token, ["websocket"])
    try:
        acks, closed = flood_until_disconnected(ann, 200, lambda n: {"to": b_id, "message": f"flood {n}"})
        assert closed and closed[0]["reason"].startswith("too many events after being told to slow down"), closed
        accepted = [a for a in acks if a["ok"]]
        assert 20 <= len(accepted) <= 26, len(accepted)
        time.sleep(0.3)
        assert stored_count(limited, a_id, b_id) == len(accepted)
        assert not ann.connected
        # Bob was never affected, and ann may come back (the server told her why it let her go).
        assert bob.connected and bob.call("send_message", {"to": a_id, "message": "you there?"}, timeout=10)["ok"]
        again = connect(limited, a_token, ["websocket"])
        again.disconnect()
    finally:
        ann.disconnect()
        bob.disconnect()


def test_the_defaults_let_a_burst_of_1000_through_but_not_a_sustained_flood(server):
    # The default server (conftest): MESSAGE_BURST 1000, 50 a second, disconnected after 100 refusals.
    a_id, _, a_token = server.user("ann")
    b_id, _, _ = server.user("bob")
    ann = connect(server, a_token, ["websocket"])
    started = time.monotonic()
    try:
        acks, closed = flood_until_disconnected(ann, 3000, lambda n: {"to": b_id, "message": f"flood {n}"})
        elapsed = time.monotonic() - started
        accepted = [a for a in acks if a["ok"]]
        assert 1000 <= len(accepted) <= 1000 + 50 * elapsed + 10, (len(accepted), elapsed)
        assert closed, "no session_closed before the disconnect"
        time.sleep(0.3)
        assert stored_count(server, a_id, b_id) == len(accepted)
    finally:
        ann.disconnect()



def test_metrics_count_what_the_limits_refused(limited):
    """Each limit crossed is counted by kind, a refused message also as a refused message."""
    from test_metrics import scrape, value
    a_id, _, a_token = limited.user("counted")
    b_id, _, _ = limited.user("counter")
    before = scrape(limited)
    ann = connect(limited, a_token, ["websocket"])
    try:
        sends = burst(ann, 25, lambda n: {"to": b_id, "message": f"counted {n}"})
        syncs = burst(ann, 8, lambda n: {}, event="sync")
        marks = burst(ann, 8, lambda n: {"peer": b_id, "up_to": "0"}, event="mark_read")
    finally:
        ann.disconnect()
    after = scrape(limited)
    refused_sends = sum(1 for ack in sends if not ack["ok"])
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)
    assert refused_sends >= 5 and delta("chat_rate_limited_total", limit="message") == refused_sends
    assert delta("chat_messages_refused_total", reason="rate_limited") == refused_sends
    assert delta("chat_rate_limited_total", limit="other") == sum(1 for ack in syncs if ack.get("error", "").startswith("too many events")) >= 3
    assert delta("chat_rate_limited_total", limit="receipt") == sum(1 for ack in marks if ack.get("error", "").startswith("too many read receipts")) >= 3
