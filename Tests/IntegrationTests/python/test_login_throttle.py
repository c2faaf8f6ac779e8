"""Login throttling and the registration limit (issue 12, item 1), with the limits as shipped:
5 failures at an account before delays that double, 10 failures a minute per address (30 at
once), 20 registrations an hour per address. A throttled answer is 429 with Retry-After and
the same body whether the account exists or not."""
import os
import time
import uuid

import pytest
import requests

from conftest import Server


@pytest.fixture(scope="module")
def shipped(database):
    # Empty values: the defaults, not the suite's raised limits.
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"REGISTRATIONS_PER_ADDRESS_PER_HOUR": "", "LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE": ""})
    server.started = time.monotonic()
    yield server
    assert server.stop() == 0, "".join(server.output)


def login(server, email, password):
    return requests.post(server.url + "/api/auth/login", json={"email": email, "password": password}, timeout=10)


def register(server, name):
    return requests.post(server.url + "/api/auth/register",
                         json={"username": name, "email": f"{name}-{uuid.uuid4().hex[:8]}@example.com", "password": "password1"}, timeout=10)


def timed_login(server, email, password):
    started = time.monotonic()
    r = login(server, email, password)
    return r, time.monotonic() - started


def test_an_account_is_delayed_after_five_failures_and_a_success_resets_it(shipped):
    _, ann, _ = shipped.user("ann")
    _, bob, _ = shipped.user("bob")
    nobody = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for email in (ann, nobody):
        for _ in range(5):
            r = login(shipped, email, "wrong password")
            assert r.status_code == 401 and r.json() == {"message": "Invalid credentials"}
        # The sixth is answered after a second (the connection is not read meanwhile: a guesser
        # gets one answer a second), the same for an account that exists and one that does not.
        r, took = timed_login(shipped, email, "wrong password")
        assert 0.9 <= took < 1.8, took
        assert r.status_code == 429 and r.headers["Retry-After"] == "1", r.text
        assert r.json() == {"error": "Too many failed logins; try again in 1 s"}
    # Other accounts do not wait at all.
    r, took = timed_login(shipped, bob, "password1")
    assert r.status_code == 200 and took < 0.9
    # The wait is over by now: the sixth failure counts...
    assert login(shipped, ann, "wrong password").status_code == 401
    # ...and doubles the wait, which even the right password must sit out.
    r = login(shipped, ann, "password1")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2", r.text
    time.sleep(1.1)
    assert login(shipped, ann, "password1").status_code == 200
    # Reset: the next failure is a plain one again.
    assert login(shipped, ann, "wrong password").status_code == 401
    assert login(shipped, ann, "password1").status_code == 200


def test_registrations_per_address_are_limited(shipped):
    answers = [register(shipped, f"many{n}") for n in range(25)]
    statuses = [r.status_code for r in answers]
    # Two earlier in this module (ann, bob): 18 more pass, then 429.
    assert statuses == [200] * 18 + [429] * 7, statuses
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"].startswith("Too many registrations from this address; try again in ")


def test_failures_from_one_address_across_accounts_are_limited(shipped):
    # 30 failures at once per address (10 a minute after): spread over many made-up accounts,
    # so no account's own limit is reached. 12 were spent above, and the bucket has refilled
    # one every 6 s since the server started.
    statuses = [login(shipped, f"guess-{n}@example.com", "wrong").status_code for n in range(30)]
    refilled = (time.monotonic() - shipped.started) / 6
    assert 18 <= statuses.count(401) <= 18 + refilled + 1 and statuses[-1] == 429, statuses
    r = login(shipped, "someone-else@example.com", "whatever")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
