"""Fixtures: a fresh database and a real server process per test module, from what
`make test` provides (TEST_DATABASE_URL, CHAT_SERVER_BIN, CHAT_SCHEMA_FILE)."""
import os
import re
import signal
import subprocess
import threading
import uuid

import pytest
import requests

REQUIRED = ("TEST_DATABASE_URL", "CHAT_SERVER_BIN", "CHAT_SCHEMA_FILE")


def _environment():
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"these tests need {', '.join(missing)} from `make test`: run them with `make test`", pytrace=False)
    return {name: os.environ[name] for name in REQUIRED}


def psql(url, sql):
    return subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], check=True, capture_output=True, text=True).stdout.strip()


class Server:
    def __init__(self, binary, database_url, extra=None):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ENV_FILE": "/nonexistent/.env", "DATABASE_URL": database_url,
               "JWT_SECRET": "python-test-secret", "PORT": "0", "HOST": "127.0.0.1", "BCRYPT_COST": "4", "WORKERS": "2",
               "LOG_LEVEL": "warning",
               # The tests register hundreds of users, fail logins on purpose and open connections
               # quickly, all from 127.0.0.1; test_login_throttle.py and test_connection_caps.py run
               # their own servers with the per-address limits as shipped.
               "REGISTRATIONS_PER_ADDRESS_PER_HOUR": "100000000", "LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE": "100000000",
               "CONNECTIONS_PER_ADDRESS": "100000000", "NEW_CONNECTIONS_PER_ADDRESS_PER_SECOND": "10000000"}
        # make sanitize: the server reports where the suite says.
        env.update({name: os.environ[name] for name in ("TSAN_OPTIONS", "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS") if name in os.environ})
        env.update(extra or {})
        self.database_url = database_url
        self.process = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = []
        line = self.process.stdout.readline()
        self.output.append(line)
        match = re.search(r"listening on http://\S*:(\d+) ", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"server did not start: {line}{self.process.stdout.read()}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def user(self, name):
        """Registers and logs in a fresh user: (id, email, token)."""
        email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
        r = requests.post(self.url + "/api/auth/register", json={"username": name, "email": email, "password": "password1"}, timeout=10)
        assert r.status_code == 200, r.text
        r = requests.post(self.url + "/api/auth/login", json={"email": email, "password": "password1"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["user"]["id"], email, r.json()["token"]

    def history(self, token, other, limit=100, offset=0):
        r = requests.get(f"{self.url}/api/messages/{other}", params={"limit": limit, "offset": offset},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def database():
    env = _environment()
    name = "py_" + uuid.uuid4().hex[:8]
    psql(env["TEST_DATABASE_URL"], f"CREATE DATABASE {name}")
    url = env["TEST_DATABASE_URL"].rsplit("/", 1)[0] + "/" + name
    subprocess.run([env["CHAT_SERVER_BIN"], "migrate", env["CHAT_SCHEMA_FILE"]], env={"DATABASE_URL": url, "ENV_FILE": "/nonexistent",
                   "PATH": os.environ.get("PATH", "")}, check=True, capture_output=True)
    return url


@pytest.fixture(scope="module")
def server(database):
    server = Server(os.environ["CHAT_SERVER_BIN"], database)
    yield server
    assert server.stop() == 0, "".join(server.output)
