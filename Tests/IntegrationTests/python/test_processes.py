"""Several server processes on one database (issue 13), driven by python-socketio over both
transports: what any process commits reaches every socket of its receiver (and the sender's
other devices) on every process, in sequence order, exactly once — also while the listening
connections are cut, and whatever arrives on the notification channel."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest
import requests
import socketio

from conftest import Server, psql
from test_resume_and_sync import RecoveringClient, send_all
from test_socketio_chat import TRANSPORTS, Inbox, connect

STREAM_EVENTS = ("receive_message", "own_message", "messages_read")


def seq_of(cursor):
    return int(cursor[1:], 36)


class Recorder:
    """Every stream event a socket got, in the order it got them (python-engineio may hand
    events to threads out of order, so they are taken in order, as the JS client does)."""

    def __init__(self, server, token, transports):
        self.inbox = Inbox()
        self.client = socketio.Client(reconnection=False)
        trigger = self.client.eio._trigger_event

        def in_order(event, *args, **kwargs):
            if event == "message":
                kwargs["run_async"] = False
            return trigger(event, *args, **kwargs)

        self.client.eio._trigger_event = in_order
        for name in STREAM_EVENTS + ("message_sent",):
            self.client.on(name, (lambda name: lambda data=None, *rest: self.inbox.add(name, data))(name))
        self.client.connect(server.url, auth={"token": token}, transports=transports, wait_timeout=10)

    def of(self, name):
        return self.inbox.of(name)

    def wait_for(self, name, count, timeout=30):
        return self.inbox.wait(lambda: len(self.of(name)) >= count, timeout=timeout)

    def close(self):
        try:
            self.client.disconnect()
        except Exception:
            pass


@pytest.fixture(scope="module")
def servers(database):
    started = [Server(os.environ["CHAT_SERVER_BIN"], database) for _ in range(3)]
    yield started
    for server in started:
        assert server.stop() == 0, "".join(server.output)


def assert_once_in_order(events, expected_ids, what):
    ids = [event["id"] for event in events]
    assert ids == expected_ids, f"{what}: {len(ids)} events, expected {len(expected_ids)} in sequence order, each once"
    seqs = [seq_of(event["cursor"]) for event in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"{what}: cursors out of order"


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_a_message_reaches_every_device_on_every_process_once_in_order(servers, database, mode):
    one, two, three = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = one.user("bob")
    sender = connect(one, a_token, TRANSPORTS[mode])
    b_on_two = Recorder(two, b_token, TRANSPORTS[mode])
    b_on_three = Recorder(three, b_token, TRANSPORTS[mode])
    a_on_three = Recorder(three, a_token, TRANSPORTS[mode])
    try:
        acks = send_all(sender, b_id, [f"across {mode} {n}" for n in range(60)])
        assert all(ack["ok"] for ack in acks), acks
        ids = [ack["id"] for ack in acks]
        assert ids == psql(database, f"SELECT id FROM messages WHERE sender_id = '{a_id}' ORDER BY seq").split()
        for recorder, name, what in ((b_on_two, "receive_message", "bob on process two"), (b_on_three, "receive_message", "bob on process three"),
                                     (a_on_three, "own_message", "ann's other device on process three")):
            recorder.wait_for(name, len(ids))
            time.sleep(0.3)  # anything extra would have come by now
            assert_once_in_order(recorder.of(name), ids, what)
        assert [event["message"] for event in b_on_two.of("receive_message")] == [f"across {mode} {n}" for n in range(60)]
        assert not a_on_three.of("receive_message"), "a sender's other device gets own_message, not receive_message"
    finally:
        for client in (sender,):
            client.disconnect()
        for recorder in (b_on_two, b_on_three, a_on_three):
            recorder.close()


def test_senders_on_every_process_at_once_reach_each_device_of_the_receiver_in_one_order(servers, database):
    receiver_id, _, receiver_token = servers[0].user("rita")
    senders = []
    for index, server in enumerate(servers):
        user_id, _, token = server.user(f"sender{index}")
        senders.append((user_id, connect(server, token, TRANSPORTS["websocket"])))
    devices = [Recorder(server, receiver_token, TRANSPORTS["websocket"]) for server in servers]
    try:
        results = {}

        def send(index, client):
            results[index] = send_all(client, receiver_id, [f"from {index}: {n}" for n in range(150)])

        threads = [threading.Thread(target=send, args=(index, client)) for index, (_, client) in enumerate(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(ack["ok"] for acks in results.values() for ack in acks)
        stored = psql(database, f"SELECT id FROM messages WHERE receiver_id = '{receiver_id}' ORDER BY seq").split()
        assert len(stored) == 450
        for index, device in enumerate(devices):
            device.wait_for("receive_message", len(stored))
            time.sleep(0.3)
            assert_once_in_order(device.of("receive_message"), stored, f"the receiver's device on process {index + 1}")
    finally:
        for _, client in senders:
            client.disconnect()
        for device in devices:
            device.close()


def test_a_receipt_on_one_process_reaches_the_sender_on_another(servers):
    one, two, _ = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = two.user("bob")
    a = Recorder(one, a_token, TRANSPORTS["websocket"])
    b = connect(two, b_token, TRANSPORTS["websocket"])
    try:
        acks = send_all(a.client, b_id, ["read me", "and me"])
        answer = b.call("mark_read", {"with": a_id, "up_to": acks[-1]["id"]}, timeout=10)
        assert answer["ok"] and answer["moved"], answer
        assert a.wait_for("messages_read", 1), "ann hears that bob read her messages"
        read = [event for event in a.of("messages_read") if event["reader"] == b_id]
        assert read and read[-1]["peer"] == a_id and read[-1]["up_to"] == answer["read_up_to"], a.of("messages_read")
    finally:
        a.close()
        b.disconnect()


def test_cut_listening_connections_catch_up_without_a_gap_or_a_repeat(servers, database):
    one, two, _ = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = one.user("bob")
    sender = connect(one, a_token, TRANSPORTS["websocket"])
    receiver = Recorder(two, b_token, TRANSPORTS["websocket"])
    try:
        ids = [ack["id"] for ack in send_all(sender, b_id, [f"before {n}" for n in range(20)])]
        cut = psql(database, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'chat-server-listen'")
        assert int(cut) == 3, "each process listens on a connection of its own"
        # Sent while the listeners are away (they come back within a second or so).
        ids += [ack["id"] for ack in send_all(sender, b_id, [f"during {n}" for n in range(40)])]
        ids += [ack["id"] for ack in send_all(sender, b_id, [f"after {n}" for n in range(20)])]
        assert receiver.wait_for("receive_message", len(ids), timeout=20), len(receiver.of("receive_message"))
        time.sleep(0.5)
        assert_once_in_order(receiver.of("receive_message"), ids, "bob, on the process whose listener was cut")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and int(psql(database, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chat-server-listen'")) < 3:
            time.sleep(0.1)
        assert int(psql(database, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chat-server-listen'")) == 3
        assert any("listening" in line for line in two.output), "the outage is in the log"
        # Caught up: the notification lag each process reports (/metrics) is back to nothing.
        for server in servers:
            deadline = time.monotonic() + 5
            while "\nchat_stream_undelivered_places 0.0\n" not in (metrics := requests.get(server.url + "/metrics", timeout=10).text):
                assert time.monotonic() < deadline, [line for line in metrics.splitlines() if "undelivered" in line]
                time.sleep(0.1)
        # Bob's process handed out what ann's wrote, and timed it (once per range it read).
        delivered = re.search(r'^chat_delivery_seconds_count\{origin="other_process"\} (\S+)$', requests.get(two.url + "/metrics", timeout=10).text, re.M)
        assert delivered and 1 <= float(delivered.group(1)) <= len(ids), delivered
    finally:
        sender.disconnect()
        receiver.close()


def test_stray_notifications_are_ignored_and_nothing_repeats(servers, database):
    one, two, _ = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = one.user("bob")
    sender = connect(one, a_token, TRANSPORTS["websocket"])
    receiver = Recorder(two, b_token, TRANSPORTS["websocket"])
    try:
        ids = [ack["id"] for ack in send_all(sender, b_id, [f"first {n}" for n in range(10)])]
        assert receiver.wait_for("receive_message", len(ids))
        head = int(psql(database, "SELECT last_seq FROM stream_head"))
        for payload in ("garbage", "", "5 3 x", "-4 2 x", "1 2", f"0 {head} someone", f"{head - 5} {head} someone",
                        f"{head - 3} {head + 2} someone", f"{head} {head + 1_000_000} someone", "9999999999999999999999 1 x"):
            psql(database, f"SELECT pg_notify('chat_stream', '{payload}')")
        ids += [ack["id"] for ack in send_all(sender, b_id, [f"then {n}" for n in range(10)])]
        assert receiver.wait_for("receive_message", len(ids))
        time.sleep(1.5)  # a head poll has passed too
        assert_once_in_order(receiver.of("receive_message"), ids, "bob, after stray notifications")
        for server in servers:
            assert server.process.poll() is None, "".join(server.output)
    finally:
        sender.disconnect()
        receiver.close()


@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_a_killed_process_clients_resume_on_another_with_nothing_lost_or_repeated(database, mode):
    survivor = Server(os.environ["CHAT_SERVER_BIN"], database)
    doomed = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        a_id, _, a_token = survivor.user("ann")
        b_id, _, b_token = survivor.user("bob")
        sender = connect(survivor, a_token, TRANSPORTS[mode])
        receiver = RecoveringClient(b_token, TRANSPORTS[mode]).connect(doomed.url)
        ids = [ack["id"] for ack in send_all(sender, b_id, [f"before {n}" for n in range(30)])]
        assert receiver.events.wait(lambda: len(receiver.of("receive_message")) >= len(ids))
        doomed.process.kill()
        doomed.process.wait(10)
        # The connection died with the process: the client lets it go as the JS client does
        # before reconnecting (keeping its pid and offset).
        let_go(receiver)
        # Messages keep coming while bob is away; he comes back through the other process.
        ids += [ack["id"] for ack in send_all(sender, b_id, [f"while away {n}" for n in range(30)])]
        receiver.connect(survivor.url)
        assert receiver.recovered, "the session made on the killed process resumes on the other"
        ids += [ack["id"] for ack in send_all(sender, b_id, [f"after {n}" for n in range(10)])]
        assert receiver.events.wait(lambda: len(receiver.of("receive_message")) >= len(ids), timeout=20)
        time.sleep(0.3)
        got = [event["id"] for event in receiver.of("receive_message")]
        assert got == ids, (len(got), len(ids))
        sender.disconnect()
        receiver.client.disconnect()
    finally:
        assert survivor.stop() == 0, "".join(survivor.output)
        doomed.stop()


def listen_for(client, *names):
    for name in names:
        client.on(name, (lambda name: lambda data=None: client.inbox.add(name, data))(name))
    return client


def test_typing_crosses_processes(servers):
    one, two, _ = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = two.user("bob")
    ann = connect(one, a_token, TRANSPORTS["websocket"])
    bob = listen_for(connect(two, b_token, TRANSPORTS["polling"]), "typing")
    try:
        assert ann.call("send_message", {"to": b_id, "message": "hi"}, timeout=10)["ok"]  # a conversation
        assert ann.call("typing", {"to": b_id, "typing": True}, timeout=10) == {"ok": True}
        assert bob.inbox.wait(lambda: bob.inbox.of("typing")), "bob, on another process, sees ann typing"
        assert bob.inbox.of("typing")[0] == {"from": a_id, "typing": True}
        assert ann.call("typing", {"to": b_id, "typing": False}, timeout=10) == {"ok": True}
        assert bob.inbox.wait(lambda: len(bob.inbox.of("typing")) == 2)
        assert bob.inbox.of("typing")[1] == {"from": a_id, "typing": False}
    finally:
        ann.disconnect()
        bob.disconnect()


@pytest.fixture(scope="module")
def quick_servers(database):
    started = [Server(os.environ["CHAT_SERVER_BIN"], database, {"PRESENCE_GRACE_SECONDS": "1"}) for _ in range(2)]
    yield started
    for server in started:
        if server.process.poll() is None:
            assert server.stop() == 0, "".join(server.output)


def test_presence_spans_processes_and_a_dead_process_users_go_offline(quick_servers, database):
    one, two = quick_servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = one.user("bob")
    ann = connect(one, a_token, TRANSPORTS["websocket"])
    assert ann.call("send_message", {"to": b_id, "message": "hi"}, timeout=10)["ok"]
    ann.disconnect()
    time.sleep(2)  # ann's first session is over everywhere
    bob = listen_for(connect(one, b_token, TRANSPORTS["websocket"]), "presence")
    try:
        ann = connect(two, a_token, TRANSPORTS["websocket"])
        assert bob.inbox.wait(lambda: bob.inbox.of("presence")), "ann online on process two: bob, on one, is told"
        assert bob.inbox.of("presence")[0]["user"] == a_id and bob.inbox.of("presence")[0]["online"] is True
        looked_up = requests.get(f"{one.url}/api/users/{a_id}/presence", headers={"Authorization": f"Bearer {b_token}"}, timeout=10)
        assert looked_up.json()["online"] is True, "process one answers for a user online on two"
        # A second device on process one, then the first one goes: still online, nobody told.
        # (Over WebSocket: python-socketio leaves a polling session without a word, and the
        # server only times it out.)
        ann_too = connect(one, a_token, TRANSPORTS["websocket"])
        ann.disconnect()
        time.sleep(2.5)
        assert len(bob.inbox.of("presence")) == 1, bob.inbox.of("presence")
        ann_too.disconnect()
        assert bob.inbox.wait(lambda: len(bob.inbox.of("presence")) == 2, timeout=5)
        assert bob.inbox.of("presence")[1]["online"] is False and bob.inbox.of("presence")[1]["last_seen"]
        # ann on process two, which is then killed: she goes offline within a bounded time.
        ann = connect(two, a_token, TRANSPORTS["websocket"])
        assert bob.inbox.wait(lambda: len(bob.inbox.of("presence")) == 3)
        two.process.kill()
        two.process.wait(10)
        started = time.monotonic()
        assert bob.inbox.wait(lambda: len(bob.inbox.of("presence")) == 4, timeout=15), "a dead process's users go offline"
        assert bob.inbox.of("presence")[3]["user"] == a_id and bob.inbox.of("presence")[3]["online"] is False
        assert time.monotonic() - started < 10
    finally:
        bob.disconnect()


def test_a_logout_on_one_process_ends_the_sockets_on_another(servers):
    one, two, three = servers
    user_id, email, token = one.user("ann")
    socket_there = connect(two, token, TRANSPORTS["websocket"])
    closed = Inbox()
    socket_there.on("session_closed", lambda data: closed.add("session_closed", data))
    socket_there.on("disconnect", lambda *reason: closed.add("disconnect", reason))
    assert requests.get(three.url + "/api/conversations", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    r = requests.post(one.url + "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert closed.wait(lambda: closed.of("disconnect"), timeout=10), "the socket on process two is ended"
    assert closed.of("session_closed") == [{"reason": "logged out"}]
    time.sleep(0.2)
    for server in (two, three):  # process three had the old generation in memory
        r = requests.get(server.url + "/api/conversations", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 403 and r.json() == {"message": "Invalid token"}, r.text


def test_a_block_made_on_one_process_holds_on_another(servers):
    one, two, _ = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = one.user("bob")
    ann = connect(two, a_token, TRANSPORTS["websocket"])
    try:
        assert ann.call("send_message", {"to": b_id, "message": "before"}, timeout=10)["ok"]
        r = requests.post(f"{one.url}/api/users/{a_id}/block", headers={"Authorization": f"Bearer {b_token}"}, timeout=10)
        assert r.status_code in (200, 201), r.text
        time.sleep(0.3)
        refused = ann.call("send_message", {"to": b_id, "message": "after"}, timeout=10)
        assert refused["ok"] is False, "process two knows of the block made on process one"
        assert psql(one.database_url, f"SELECT count(*) FROM messages WHERE sender_id = '{a_id}'") == "1"
        r = requests.delete(f"{one.url}/api/users/{a_id}/block", headers={"Authorization": f"Bearer {b_token}"}, timeout=10)
        assert r.status_code in (200, 204), r.text
        time.sleep(0.3)
        assert ann.call("send_message", {"to": b_id, "message": "again"}, timeout=10)["ok"]
    finally:
        ann.disconnect()


REPOSITORY = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class Nginx:
    """nginx from Debian in front of the servers, configured by scripts/cluster.sh nginx-config
    (the configuration deploy/nginx-chat.conf shows)."""

    def __init__(self, servers, prefix):
        import socket as sockets
        probe = sockets.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        os.makedirs(prefix, exist_ok=True)
        config = subprocess.run([os.path.join(REPOSITORY, "scripts", "cluster.sh"), "nginx-config", f"127.0.0.1:{self.port}", prefix]
                                + [f"127.0.0.1:{server.port}" for server in servers], check=True, capture_output=True, text=True).stdout
        with open(os.path.join(prefix, "nginx.conf"), "w") as file:
            file.write(config)
        self.process = subprocess.Popen(["nginx", "-p", prefix, "-c", os.path.join(prefix, "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(self.url + "/socket.io/?EIO=4&transport=polling", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)  # at once: open WebSockets would hold a graceful stop
        self.process.wait(10)

    # What the tests' helpers take for a server.
    def user(self, name):
        return Server.user(self, name)


@pytest.fixture(scope="module")
def behind_nginx(database, tmp_path_factory):
    started = [Server(os.environ["CHAT_SERVER_BIN"], database, {"INSTANCE_ID": f"n{n}", "TRUSTED_PROXIES": "127.0.0.1"}) for n in (1, 2, 3)]
    nginx = Nginx(started, str(tmp_path_factory.mktemp("nginx")))
    yield nginx, started
    nginx.stop()
    for server in started:
        if server.process.poll() is None:
            assert server.stop() == 0, "".join(server.output)


def test_polling_sessions_stay_with_their_process_behind_nginx(behind_nginx):
    nginx, servers = behind_nginx
    _, _, token = nginx.user("poller")
    owners = set()
    for _ in range(6):
        r = requests.get(nginx.url + "/socket.io/?EIO=4&transport=polling", timeout=10)
        assert r.status_code == 200, r.text
        sid = json.loads(r.text[1:])["sid"]
        owners.add(sid.split(".")[0])
        session = nginx.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        # Every later request of the session reaches the process that has it (another would
        # answer "Session ID unknown"): the CONNECT, its reply, an event with an ack, the ack.
        r = requests.post(session, data='40{"token":"' + token + '"}', timeout=10)
        assert r.status_code == 200 and r.text == "ok", r.text
        r = requests.get(session, timeout=10)
        assert r.status_code == 200 and r.text.startswith("40{"), r.text
        r = requests.post(session, data='421["sync",{"limit":1}]', timeout=10)
        assert r.status_code == 200 and r.text == "ok", r.text
        r = requests.get(session, timeout=10)
        assert r.status_code == 200 and r.text.startswith('431[') and json.loads(r.text[3:])[0]["ok"] is True, r.text
        requests.post(session, data="1", timeout=10)
    assert owners <= {"n1", "n2", "n3"} and len(owners) >= 2, f"new sessions are spread over the processes: {owners}"


@pytest.mark.parametrize("mode", ["websocket", "polling", "upgrade"])
def test_three_processes_behind_nginx_chat_as_one(behind_nginx, mode):
    nginx, _ = behind_nginx
    a_id, _, a_token = nginx.user("ann")
    b_id, _, b_token = nginx.user("bob")
    sender = connect(nginx, a_token, TRANSPORTS[mode])
    devices = [Recorder(nginx, b_token, TRANSPORTS[mode]) for _ in range(3)]
    try:
        ids = [ack["id"] for ack in send_all(sender, b_id, [f"through nginx {n}" for n in range(40)])]
        for index, device in enumerate(devices):
            device.wait_for("receive_message", len(ids))
            time.sleep(0.2)
            assert_once_in_order(device.of("receive_message"), ids, f"bob's device {index + 1}")
    finally:
        sender.disconnect()
        for device in devices:
            device.close()


def test_the_clients_real_address_reaches_the_server_through_nginx(database, tmp_path):
    # Registrations are limited per address (here 2 an hour). Through a trusted nginx the
    # server counts the address nginx names (the rightmost X-Forwarded-For entry that is not a
    # trusted proxy; this test's client, on 127.0.0.1, is one, so what it sends stands for its
    # address), not nginx's own: each address gets its 2.
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"TRUSTED_PROXIES": "127.0.0.1", "REGISTRATIONS_PER_ADDRESS_PER_HOUR": "2"})
    nginx = Nginx([server], str(tmp_path / "nginx"))
    try:
        def register(address, n):
            return requests.post(nginx.url + "/api/auth/register", json={"username": f"u{n}", "email": f"u{n}-{address}@example.com", "password": "password1"},
                                 headers={"X-Forwarded-For": address}, timeout=10).status_code
        assert [register("203.0.113.9", n) for n in range(3)] == [200, 200, 429]
        assert [register("198.51.100.7", n) for n in range(3)] == [200, 200, 429], "another client is not held back by the first"
    finally:
        nginx.stop()
        assert server.stop() == 0, "".join(server.output)


def let_go(client):
    """A RecoveringClient whose process died lets its connection go (its pid and offset kept),
    as the JS client does before reconnecting."""
    with client.lock:
        client.generation += 1
    gone, client.client = client.client, None
    try:
        gone.disconnect()
    except Exception:
        pass


def resume_through(nginx, client):
    """A RecoveringClient whose process went away reconnects through nginx (retrying while
    nginx still tries the dead one) and must resume its session there."""
    let_go(client)
    for _ in range(50):
        try:
            client.connect(nginx.url)
            break
        except Exception:
            time.sleep(0.1)
    assert client.client is not None and client.recovered, "resumed on another process"


def test_a_process_killed_under_load_loses_nothing_behind_nginx(behind_nginx, database):
    nginx, servers = behind_nginx
    victim = servers[2]
    a_id, _, a_token = nginx.user("ann")
    receivers = []
    # Receivers spread over the processes by nginx, until a few are on the one to be killed.
    while sum(client.client.eio.sid.startswith("n3.") for _, client in receivers) < 2:
        assert len(receivers) < 20, "nginx never chose process n3"
        user_id, _, token = nginx.user(f"bob{len(receivers)}")
        receivers.append((user_id, RecoveringClient(token, TRANSPORTS["websocket"]).connect(nginx.url)))
    on_victim = [client for _, client in receivers if client.client.eio.sid.startswith("n3.")]
    sender = connect(nginx, a_token, TRANSPORTS["websocket"])
    sent = {user_id: [] for user_id, _ in receivers}
    stop = threading.Event()

    def keep_sending():
        n = 0
        while not stop.is_set() and n < 3000:
            for user_id, _ in receivers:
                try:
                    ack = sender.call("send_message", {"to": user_id, "message": f"load {n}"}, timeout=10)
                except Exception:
                    continue
                if ack.get("ok"):
                    sent[user_id].append(ack["id"])
            n += 1

    sending = threading.Thread(target=keep_sending)
    sending.start()
    try:
        time.sleep(1.5)
        victim.process.kill()
        victim.process.wait(10)
        killed_at = time.monotonic()
        # Those whose connection died with it come back through nginx, to the others.
        back_at = killed_at
        for client in on_victim:
            resume_through(nginx, client)
            assert not client.client.eio.sid.startswith("n3.")
            back_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        sending.join(30)
    print(f"{len(on_victim)} clients of the killed process back {back_at - killed_at:.2f} s after the kill")
    for user_id, client in receivers:
        assert client.events.wait(lambda: len(client.of("receive_message")) >= len(sent[user_id]), timeout=20)
        time.sleep(0.2)
        got = [event["id"] for event in client.of("receive_message")]
        stored = psql(database, f"SELECT id FROM messages WHERE receiver_id = '{user_id}' ORDER BY seq").split()
        assert set(sent[user_id]) <= set(stored), "every acknowledged message is stored"
        assert got == stored, f"{user_id}: {len(got)} received, {len(stored)} stored: each once, in order"
        client.client.disconnect()
    sender.disconnect()


def test_a_rolling_restart_moves_a_process_clients_with_no_error_behind_nginx(database, tmp_path):
    # One of three processes stopped gracefully (SIGTERM) under load, as a rolling restart
    # does. Its receivers see their transport close, reconnect through nginx (which passes the
    # stopped process over) and resume; its sender resends what was not acknowledged, with the
    # same client_id, as the clients do. No send is refused, nothing acknowledged is lost,
    # nothing arrives twice.
    servers = [Server(os.environ["CHAT_SERVER_BIN"], database, {"INSTANCE_ID": f"n{n}", "TRUSTED_PROXIES": "127.0.0.1"}) for n in (1, 2, 3)]
    nginx = Nginx(servers, str(tmp_path / "nginx"))
    victim = servers[1]
    clients = []
    try:
        def on_victim(client):
            return client.eio.sid.startswith("n2.")

        receivers = []
        while sum(on_victim(client.client) for _, client in receivers) < 2 or all(on_victim(client.client) for _, client in receivers):
            assert len(receivers) < 20, "nginx never spread the receivers over n2 and the others"
            user_id, _, token = nginx.user(f"rolling-bob{len(receivers)}")
            receivers.append((user_id, RecoveringClient(token, TRANSPORTS["websocket"]).connect(nginx.url)))
        moving = [client for _, client in receivers if on_victim(client.client)]

        def connect_where(token, wanted):
            for _ in range(20):
                client = connect(nginx, token, TRANSPORTS["websocket"])
                if wanted(client):
                    return client
                client.disconnect()
            raise AssertionError("nginx never chose the process wanted")

        steady_id, _, steady_token = nginx.user("rolling-steady")
        mover_id, _, mover_token = nginx.user("rolling-mover")
        steady = connect_where(steady_token, lambda client: not on_victim(client))
        mover = {"client": connect_where(mover_token, on_victim), "moved": False}
        clients += [steady, mover["client"]]
        acked = {user_id: [] for user_id, _ in receivers}
        refused = []
        stop = threading.Event()

        def steady_sender():
            n = 0
            while not stop.is_set() and n < 3000:
                for user_id, _ in receivers:
                    try:
                        ack = steady.call("send_message", {"to": user_id, "message": f"steady {n}"}, timeout=10)
                    except Exception as error:  # on a process that stays: an error shown to its user
                        refused.append(repr(error))
                        continue
                    (acked[user_id].append(ack["id"]) if ack.get("ok") else refused.append(ack))
                n += 1

        def moving_sender():
            n = 0
            while not stop.is_set() and n < 3000:
                for user_id, _ in receivers:
                    payload = {"to": user_id, "message": f"mover {n}", "client_id": str(uuid.uuid4())}
                    ack = None
                    for _ in range(5):
                        try:
                            ack = mover["client"].call("send_message", payload, timeout=10)
                            break
                        except Exception:
                            # The transport closed under the send: back through nginx, the same
                            # client_id again (stored once, whichever copy got there).
                            try:
                                mover["client"].disconnect()
                            except Exception:
                                pass
                            for _ in range(50):
                                try:
                                    mover["client"] = connect(nginx, mover_token, TRANSPORTS["websocket"])
                                    clients.append(mover["client"])
                                    mover["moved"] = True
                                    break
                                except Exception:
                                    time.sleep(0.1)
                    if ack is None:
                        refused.append(f"mover {n}: no answer after 5 tries")
                        stop.set()
                        return
                    (acked[user_id].append(ack["id"]) if ack.get("ok") else refused.append(ack))
                n += 1

        senders = [threading.Thread(target=steady_sender), threading.Thread(target=moving_sender)]
        for sender in senders:
            sender.start()
        try:
            time.sleep(1.5)
            stopping = threading.Thread(target=lambda: victim.stop())
            stopping.start()
            stopped_at = time.monotonic()
            back_at = stopped_at
            for client in moving:
                deadline = time.monotonic() + 15
                while client.client.connected:
                    assert time.monotonic() < deadline, "the stopping process closed its sockets"
                    time.sleep(0.02)
                resume_through(nginx, client)
                assert not on_victim(client.client)
                back_at = time.monotonic()
            stopping.join(30)
            assert victim.process.returncode == 0, "".join(victim.output)
            time.sleep(1.5)
        finally:
            stop.set()
            for sender in senders:
                sender.join(60)
        print(f"{len(moving)} receivers of the stopped process back {back_at - stopped_at:.2f} s after SIGTERM")
        assert mover["moved"] and not on_victim(mover["client"]), "the sender on the stopped process moved too"
        assert refused == [], f"no send refused: {refused[:3]}"
        mover_rows = psql(database, f"SELECT count(*) || ' ' || count(DISTINCT client_id) FROM messages WHERE sender_id = '{mover_id}'").split()
        assert mover_rows[0] == mover_rows[1], "each of the mover's messages stored once, resends included"
        for user_id, client in receivers:
            stored = psql(database, f"SELECT id FROM messages WHERE receiver_id = '{user_id}' ORDER BY seq").split()
            assert set(acked[user_id]) <= set(stored), "every acknowledged message is stored"
            assert client.events.wait(lambda: len(client.of("receive_message")) >= len(stored), timeout=20)
            time.sleep(0.2)
            got = [event["id"] for event in client.of("receive_message")]
            assert got == stored, f"{user_id}: {len(got)} received, {len(stored)} stored: each once, in order"
            client.client.disconnect()
    finally:
        for client in clients:
            try:
                client.disconnect()
            except Exception:
                pass
        nginx.stop()
        for server in servers:
            if server.process.poll() is None:
                assert server.stop() == 0, "".join(server.output)


def test_the_committed_nginx_configuration_is_what_the_script_makes():
    made = subprocess.run([os.path.join(REPOSITORY, "scripts", "cluster.sh"), "nginx-config", "127.0.0.1:5001", "/var/lib/chat-nginx",
                           "127.0.0.1:5101", "127.0.0.1:5102", "127.0.0.1:5103"], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(REPOSITORY, "deploy", "nginx-chat.conf")) as file:
        assert file.read() == made, "deploy/nginx-chat.conf is scripts/cluster.sh nginx-config's output (regenerate it)"


def restart_postgresql(database):
    """A real restart (fast shutdown, then start) of the cluster the tests use."""
    import glob
    data_directory = psql(database, "SHOW data_directory")
    pg_ctl = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))[-1]
    # Its log where scripts/pg-cluster.sh keeps it (beside the data folder): the new server
    # must not inherit this process's pipes (it outlives the call).
    log = os.path.join(os.path.dirname(data_directory), "postgresql.log")
    command = ["setsid", pg_ctl, "-D", data_directory, "-l", log, "restart", "-m", "fast", "-w", "-t", "60"]  # as pg-cluster.sh starts it
    if os.getuid() == 0:
        command = ["runuser", "-u", "postgres", "--"] + command
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/", timeout=120)


def test_postgresql_restarted_under_load_with_three_processes_loses_and_repeats_nothing(servers, database):
    one, two, three = servers
    a_id, _, a_token = one.user("ann")
    b_id, _, b_token = one.user("bob")
    sender = connect(one, a_token, TRANSPORTS["websocket"])
    devices = [Recorder(two, b_token, TRANSPORTS["websocket"]), Recorder(three, b_token, TRANSPORTS["polling"])]
    acknowledged = []
    failures = []

    def send_until_stored(count):
        for n in range(count):
            client_id = str(uuid.uuid4())
            deadline = time.monotonic() + 60
            while True:
                try:
                    ack = sender.call("send_message", {"to": b_id, "message": f"through a restart {n}", "client_id": client_id}, timeout=10)
                except Exception as error:  # a time-out: sent again with the same client_id
                    ack = {"ok": False, "error": str(error)}
                if ack.get("ok"):
                    acknowledged.append(ack["id"])
                    break
                if time.monotonic() > deadline:
                    failures.append(ack)
                    return
                time.sleep(0.05)

    sending = threading.Thread(target=send_until_stored, args=(300,))
    sending.start()
    try:
        time.sleep(1)
        restart_postgresql(database)
        sending.join(120)
        assert not failures, failures[:3]
        assert len(acknowledged) == 300 and len(set(acknowledged)) == 300
        stored = psql(database, f"SELECT id FROM messages WHERE receiver_id = '{b_id}' ORDER BY seq").split()
        assert stored == acknowledged, "every message stored once, in the order sent"
        for index, device in enumerate(devices):
            assert device.wait_for("receive_message", len(stored), timeout=30), (index, len(device.of("receive_message")))
            time.sleep(0.5)
            assert_once_in_order(device.of("receive_message"), stored, f"bob's device on process {index + 2}")
        for server in servers:
            assert server.process.poll() is None, "no process had to be restarted"
    finally:
        sender.disconnect()
        for device in devices:
            device.close()
