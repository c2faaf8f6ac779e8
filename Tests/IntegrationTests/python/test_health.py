"""Liveness and readiness (issue 14): /livez says the process serves, /readyz whether it
should be sent traffic — not while the database does not answer, nor from the first moment
of a graceful stop, so that a load balancer drains it. /healthz stays as CONTRACT.md has it."""
import os
import signal
import socket
import time

import requests

from conftest import Server


def get(server, path):
    return requests.get(server.url + path, timeout=10)


def test_a_serving_process_is_live_and_ready(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        live, ready, health = get(server, "/livez"), get(server, "/readyz"), get(server, "/healthz")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert requests.head(server.url + "/readyz", timeout=10).status_code == 200
        refused = requests.post(server.url + "/readyz", timeout=10)
        assert refused.status_code == 405 and "GET" in refused.headers["Allow"]
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_without_its_database_a_process_is_live_but_not_ready(database):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()[1]  # closed once this block ends: nothing listens there
    # (LOG_LEVEL=error: the warnings about the database come before the line the helper reads.)
    server = Server(os.environ["CHAT_SERVER_BIN"], f"postgres://chat:secret@127.0.0.1:{nobody}/chat?connect_timeout=2", {"LOG_LEVEL": "error"})
    try:
        assert get(server, "/livez").status_code == 200
        ready = get(server, "/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "reasons": ["database unavailable"]}
        assert ready.headers["Retry-After"] == "1"
        assert get(server, "/healthz").status_code == 503
    finally:
        server.stop(signal.SIGKILL)


def test_a_graceful_stop_makes_the_process_not_ready_at_once(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    try:
        _, _, token = server.user("poller")
        # A polling session that is owed a packet it does not collect: the stop waits (up to
        # 3 s) for it to, and the process keeps answering HTTP meanwhile.
        r = requests.get(server.url + "/socket.io/?EIO=4&transport=polling", timeout=10)
        sid = r.text[r.text.index('"sid":"') + 7:].split('"')[0]
        session = server.url + f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        assert requests.post(session, data='40{"token":"' + token + '"}', timeout=10).text == "ok"
        assert get(server, "/readyz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        seen = None
        while time.monotonic() < deadline:
            try:
                answer = get(server, "/readyz")
            except requests.ConnectionError:
                break
            if answer.status_code == 503:
                seen = answer.json()
                break
            time.sleep(0.02)
        assert seen is not None and "shutting down" in seen["reasons"], "not ready while stopping"
        assert get(server, "/livez").status_code == 200, "still live: it is finishing, not dead"
        assert server.process.wait(timeout=20) == 0
    finally:
        server.stop()
