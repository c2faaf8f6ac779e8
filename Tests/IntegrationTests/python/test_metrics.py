"""GET /metrics (issue 14): Prometheus's text format, read by prometheus_client's own parser —
the counts move as messages are stored and refused, the histograms count batches, the states
are read when scraped; METRICS_TOKEN guards it."""
import os

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
        for reason in ("invalid", "blocked", "rate_limited", "overloaded", "unknown_receiver", "store_unavailable", "store_failed"):
            assert ("chat_messages_refused_total", (("reason", reason),)) in before, f"{reason} is there from the start"
        a_id, _, a_token = server.user("ann")
        b_id, _, _ = server.user("bob")
        sender = connect(server, a_token, TRANSPORTS["websocket"])
        try:
            acks = send_all(sender, b_id, [f"counted {n}" for n in range(25)])
            assert all(ack["ok"] for ack in acks)
            refused = sender.call("send_message", {"to": b_id, "message": ""}, timeout=10)
            assert refused["ok"] is False
            nobody = sender.call("send_message", {"to": "00000000-0000-4000-8000-000000000000", "message": "to no one"}, timeout=10)
            assert nobody["ok"] is False
            during = scrape(server)
            assert value(during, "engineio_sessions") == 1
        finally:
            sender.disconnect()
        after = scrape(server)
        assert value(after, "chat_messages_stored_total") - value(before, "chat_messages_stored_total") == 25
        assert value(after, "chat_messages_refused_total", reason="invalid") - value(before, "chat_messages_refused_total", reason="invalid") == 1
        assert value(after, "chat_messages_refused_total", reason="unknown_receiver") == value(before, "chat_messages_refused_total", reason="unknown_receiver") + 1
        batches = value(after, "chat_write_batch_messages_count") - value(before, "chat_write_batch_messages_count")
        assert 1 <= batches <= 26, batches  # the 25 in as many batches as the writer made of them, the refused receiver's too
        assert value(after, "chat_write_batch_messages_sum") - value(before, "chat_write_batch_messages_sum") == 26
        assert value(after, "chat_write_commit_seconds_count") >= batches
        assert value(after, "chat_write_commit_seconds_bucket", le="+Inf") == value(after, "chat_write_commit_seconds_count")
        assert 0 < value(after, "chat_write_commit_seconds_sum") < 30
        assert value(after, "chat_writer_queued_messages") == 0 and value(after, "chat_writer_overloaded") == 0
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_a_metrics_token_guards_the_metrics(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"METRICS_TOKEN": "scrape-me"})
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-me"}):
            r = requests.get(server.url + "/metrics", headers=headers, timeout=10)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer", (headers, r.status_code)
            assert "METRICS_TOKEN" in r.json()["message"]
        assert ("chat_messages_stored_total", ()) in scrape(server, {"Authorization": "Bearer scrape-me"})
        assert requests.post(server.url + "/metrics", timeout=10).status_code == 405
    finally:
        assert server.stop() == 0, "".join(server.output)
