"""GET /metrics (issue 14): Prometheus's text format, read by prometheus_client's own parser —
the counts move as messages are stored and refused, the histograms count batches, the states
are read when scraped; METRICS_TOKEN guards it."""
import os
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import Server
from test_resume_and_sync import send_all
from test_socketio_chat import TRANSPORTS, connect


def scrape(server, headers=None):
    r = requests.get(server.url + "/metrics", headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_metrics_count_what_happens_and_parse_as_prometheus_text(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        before = scrape(server)
        for reason in ("invalid", "blocked", "rate_limited", "overloaded", "shutting_down", "unknown_receiver", "store_unavailable", "store_failed"):
            assert ("chat_messages_refused_total", (("reason", reason),)) in before, f"{reason} is there from the start"
        a_id, _, a_token = server.user("ann")
        b_id, _, _ = server.user("bob")
        c_id, _, c_token = server.user("cid")
        assert requests.post(server.url + f"/api/users/{a_id}/block", headers={"Authorization": f"Bearer {c_token}"}, timeout=10).status_code == 200
        sender = connect(server, a_token, TRANSPORTS["websocket"])
        try:
            assert sender.call("send_message", {"to": c_id, "message": "to one who blocked me"}, timeout=10)["ok"] is False
            acks = send_all(sender, b_id, [f"counted {n}" for n in range(25)])
            assert all(ack["ok"] for ack in acks)
            refused = sender.call("send_message", {"to": b_id, "message": ""}, timeout=10)
            assert refused["ok"] is False
            nobody = sender.call("send_message", {"to": "00000000-0000-4000-8000-000000000000", "message": "to no one"}, timeout=10)
            assert nobody["ok"] is False
            poller = connect(server, a_token, TRANSPORTS["polling"])
            # And a session that has shaken hands but sent no CONNECT.
            handshake = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=10)
            assert handshake.status_code == 200 and '"sid"' in handshake.text
            try:
                during = scrape(server)
            finally:
                poller.disconnect()
            assert value(during, "engineio_sessions") == 3
            assert value(during, "engineio_sessions_by_transport", transport="websocket") == 1
            assert value(during, "engineio_sessions_by_transport", transport="polling") == 2
            assert value(during, "engineio_sessions_by_state", state="connected") == 2
            assert value(during, "engineio_sessions_by_state", state="handshaking") == 1
            assert value(during, "socketio_connections") == 2
            assert value(during, "chat_stream_undelivered_places") == 0, "one process: nothing waits"
        finally:
            sender.disconnect()
        # The WebSocket sender's socket counted down. (python-socketio's polling client may leave
        # without a word: its session then lasts until its ping times out.)
        deadline = time.monotonic() + 10
        while value(scrape(server), "socketio_connections") > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = scrape(server)
        assert value(after, "socketio_connections") <= 1 and value(after, "engineio_sessions_by_state", state="connected") <= 1
        assert value(after, "chat_messages_stored_total") - value(before, "chat_messages_stored_total") == 25
        assert value(after, "chat_messages_refused_total", reason="invalid") - value(before, "chat_messages_refused_total", reason="invalid") == 1
        assert value(after, "chat_messages_refused_total", reason="blocked") - value(before, "chat_messages_refused_total", reason="blocked") == 1
        assert value(after, "chat_messages_refused_total", reason="unknown_receiver") == value(before, "chat_messages_refused_total", reason="unknown_receiver") + 1
        batches = value(after, "chat_write_batch_messages_count") - value(before, "chat_write_batch_messages_count")
        assert value(after, "chat_write_commit_seconds_count") == value(after, "chat_write_batch_messages_count"), "the same batches"
        assert 1 <= batches <= 26, batches  # the 25 in as many batches as the writer made of them, the refused receiver's too
        assert value(after, "chat_write_batch_messages_sum") - value(before, "chat_write_batch_messages_sum") == 26
        assert value(after, "chat_write_commit_seconds_count") >= batches
        # Each batch's delivery timed once: these 26 messages' batches (and the refused
        # receiver's) on this process.
        # (The last loop to hand a batch out records it, maybe just after the ack went.)
        deadline = time.monotonic() + 5
        while (delivered := value(after, "chat_delivery_seconds_count", origin="this_process")
               - value(before, "chat_delivery_seconds_count", origin="this_process")) < batches and time.monotonic() < deadline:
            time.sleep(0.05)
            after = scrape(server)
        assert delivered == batches, (delivered, batches)
        assert 0 < value(after, "chat_delivery_seconds_sum", origin="this_process") < 30
        assert value(after, "chat_delivery_seconds_bucket", origin="this_process", le="+Inf") == value(after, "chat_delivery_seconds_count", origin="this_process")
        assert value(after, "chat_write_commit_seconds_bucket", le="+Inf") == value(after, "chat_write_commit_seconds_count")
        assert 0 < value(after, "chat_write_commit_seconds_sum") < 30
        assert value(after, "chat_writer_queued_messages") == 0 and value(after, "chat_writer_overloaded") == 0
        assert value(after, "postgres_pool_connections_ready") >= 1, "the pool is connected (4 connections by default)"
        assert value(after, "postgres_pool_waiting_statements") == 0
        assert ("postgres_pool_in_flight_statements", ()) in after and ("chat_password_hashing_pending", ()) in after
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_a_metrics_token_guards_the_metrics(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"METRICS_TOKEN": "scrape-me"})
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}, {"Authorization": "Basic scrape-me"}):
            r = requests.get(server.url + "/metrics", headers=headers, timeout=10)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", (headers, r.status_code)
            assert "METRICS_TOKEN" in r.json()["message"]
        assert ("chat_messages_stored_total", ()) in scrape(server, {"Authorization": "Bearer scrape-me"})
        assert ("chat_messages_stored_total", ()) in scrape(server, {"Authorization": "bearer scrape-me"}), "the scheme in any case"
        assert requests.post(server.url + "/metrics", timeout=10).status_code == 405
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_a_real_prometheus_scrapes_the_server(database, tmp_path):
    # Debian's prometheus (make test installs it), scraping every second with the token, as an
    # operator would configure it: the target is up and the series are in its database.
    import socket
    import subprocess
    import time
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"METRICS_TOKEN": "scrape-me"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        prometheus_port = probe.getsockname()[1]
    (tmp_path / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: chat
    authorization:
      credentials: scrape-me
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
""")
    prometheus = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                                   f"--web.listen-address=127.0.0.1:{prometheus_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    api = f"http://127.0.0.1:{prometheus_port}/api/v1"
    try:
        _, _, a_token = server.user("ann")
        b_id, _, _ = server.user("bob")
        sender = connect(server, a_token, TRANSPORTS["websocket"])
        try:
            assert all(ack["ok"] for ack in send_all(sender, b_id, [f"scraped {n}" for n in range(10)]))
        finally:
            sender.disconnect()

        def until(what, check, timeout=30):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    found = check()
                    if found:
                        return found
                except (requests.ConnectionError, KeyError, IndexError, ValueError):
                    pass
                assert prometheus.poll() is None, prometheus.stderr.read()
                time.sleep(0.5)
            raise AssertionError(f"prometheus: {what} within {timeout} s")

        target = until("the target up", lambda: [t for t in requests.get(api + "/targets", timeout=5).json()["data"]["activeTargets"]
                                                 if t["health"] == "up"])
        assert target[0]["scrapeUrl"] == f"http://127.0.0.1:{server.port}/metrics"

        def stored():
            result = requests.get(api + "/query", params={"query": "chat_messages_stored_total"}, timeout=5).json()["data"]["result"]
            return result and float(result[0]["value"][1]) >= 10 and result
        until("chat_messages_stored_total at 10", stored)
        for series in ("chat_write_commit_seconds_bucket", "chat_write_batch_messages_count", "chat_messages_refused_total", "engineio_sessions"):
            until(f"{series} present", lambda: requests.get(api + "/query", params={"query": series}, timeout=5).json()["data"]["result"])
    finally:
        prometheus.terminate()
        prometheus.wait(10)
        assert server.stop() == 0, "".join(server.output)


def test_requests_by_route_and_status_and_resumes_are_counted(database):
    from test_resume_and_sync import RecoveringClient
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        user_id, email, token = server.user("ann")
        assert requests.post(server.url + "/api/auth/login", json={"email": email, "password": "wrong password"}, timeout=10).status_code == 401
        assert requests.get(server.url + f"/api/users/{user_id}/presence", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        assert requests.get(server.url + "/api/users/not-an-id/presence", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 400
        for n in range(3):
            assert requests.get(server.url + f"/no/such/path/{n}", timeout=10).status_code == 404
        client = RecoveringClient(token, TRANSPORTS["websocket"]).connect(server.url)
        client.client.disconnect()
        client.connect(server.url)
        assert client.recovered
        client.client.disconnect()
        samples = scrape(server)
        assert value(samples, "http_requests_total", route="/api/auth/login", status="401") == 1
        assert value(samples, "http_requests_total", route="/api/auth/login", status="200") == 1
        assert value(samples, "http_requests_total", route="/api/users/:id/presence", status="200") == 1
        assert value(samples, "http_requests_total", route="/api/users/:id/presence", status="400") == 1, "a bad id is no new series"
        assert value(samples, "http_requests_total", route="unmatched", status="404") == 3, "every unknown path in one series"
        assert not [key for key in samples if key[0] == "http_requests_total" and "such" in str(key)]
        assert value(samples, "chat_resumes_total", outcome="recovered") == 1
        assert value(samples, "chat_resume_replayed_events_count") == 1
    finally:
        assert server.stop() == 0, "".join(server.output)
