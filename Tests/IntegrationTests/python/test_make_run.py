"""scripts/run.sh (make run) in throw-away copies of the checkout — Makefile, scripts/,
schema.sql and .env.example, all run.sh needs when CHAT_SERVER_BIN hands it a server binary
(under make test, the debug build) instead of building one. Issue 9: a second make run in the
same checkout, a checkout the postgres user cannot enter, PRIVATE_PG_PORT, and a cluster that
was already running.

Every wait is bounded, and whatever a test started (run.sh, its server, PostgreSQL clusters,
also those under /var/lib/swift-chat-server) is stopped and removed at its end, passed or not."""
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[3]
# Where run.sh keeps the cluster of a checkout the postgres user cannot enter (as root).
OUTSIDE = pathlib.Path("/var/lib/swift-chat-server")


def free_ports(count):
    """`count` distinct ports nobody listens on (all held open until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def environment(**settings):
    """run.sh's environment: nothing of the caller's database (DATABASE_URL would make it use
    that one), the server on loopback only, cheap bcrypt."""
    if not os.environ.get("CHAT_SERVER_BIN"):
        pytest.fail("these tests need CHAT_SERVER_BIN from `make test`: run them with `make test`", pytrace=False)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
           "CHAT_SERVER_BIN": os.environ["CHAT_SERVER_BIN"], "HOST": "127.0.0.1", "BCRYPT_COST": "4", "WORKERS": "1"}
    env.update({name: str(value) for name, value in settings.items()})
    return env


def cluster_status(cluster):
    """0 when the cluster in `cluster` runs, 3 when not (pg-cluster.sh status)."""
    return subprocess.run([str(REPO / "scripts/pg-cluster.sh"), "status", str(cluster)], capture_output=True, timeout=30).returncode


def psql(cluster, port, sql):
    password = (pathlib.Path(cluster) / "password").read_text().strip()
    return subprocess.run(["psql", f"postgres://chat:{password}@127.0.0.1:{port}/chat?connect_timeout=5", "-Atqc", sql],
                          capture_output=True, text=True, timeout=20)


def healthz(port):
    return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code


def reasons(stderr):
    """run.sh's stderr without the note a first run in a checkout prints about writing .env."""
    return "".join(line for line in stderr.splitlines(keepends=True) if not line.startswith("wrote .env from .env.example"))


def register(port, email):
    return requests.post(f"http://127.0.0.1:{port}/api/auth/register", timeout=10,
                         json={"username": "kept", "email": email, "password": "password1"}).status_code


def login(port, email):
    return requests.post(f"http://127.0.0.1:{port}/api/auth/login", timeout=10,
                         json={"email": email, "password": "password1"}).status_code


class Run:
    """One scripts/run.sh, in a session of its own like a terminal's job; its output (stdout
    and stderr, its server's included) is collected as it comes."""

    def __init__(self, checkout, env):
        self.checkout = checkout
        self.process = subprocess.Popen(["scripts/run.sh"], cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines = []
        self.ended = False
        self.condition = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stdout:
            with self.condition:
                self.lines.append(line)
                self.condition.notify_all()
        with self.condition:
            self.ended = True
            self.condition.notify_all()

    def output(self):
        with self.condition:
            return "".join(self.lines)

    def wait_for(self, pattern, timeout=60):
        """The first match of `pattern` in the output, waiting for it up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while True:
                match = re.search(pattern, "".join(self.lines))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if self.ended or remaining <= 0:
                    break
                self.condition.wait(remaining)
        pytest.fail(f"run.sh {'ended' if self.ended else 'went on'} without printing {pattern!r}:\n{self.output()}", pytrace=False)

    def serving(self, port):
        self.wait_for(rf"chat server listening on http://127\.0\.0\.1:{port} ")

    def private_cluster(self):
        """(folder, port) of the private PostgreSQL, as run.sh says it."""
        match = self.wait_for(r"private PostgreSQL in (\S+) on 127\.0\.0\.1:(\d+)\n")
        return match.group(1), int(match.group(2))

    def interrupt(self, timeout=30):
        """Ctrl-C in its terminal (SIGINT to its process group); its exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        status = self.process.wait(timeout=timeout)
        with self.condition:
            self.condition.wait_for(lambda: self.ended, timeout=10)
        return status

    def finish(self):
        """Whatever state it is in: SIGTERM (which it forwards to its server), else SIGKILL to it
        and its children's process groups (the server runs in a group of its own)."""
        if self.process.poll() is not None:
            return
        children = pathlib.Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in (children.read_text().split() if children.exists() else [])]
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            for group in [self.process.pid] + pids:
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.process.wait(timeout=10)


class Sandbox:
    """Temporary checkouts and the runs in them; `clean` stops and removes all of it."""

    def __init__(self):
        self.roots, self.checkouts, self.runs = [], [], []
        self.outside_existed = OUTSIDE.exists()

    def checkout(self, postgres_may_enter=True):
        root = pathlib.Path(tempfile.mkdtemp(prefix="chat-make-run-"))  # mode 0700
        self.roots.append(root)
        if postgres_may_enter:
            root.chmod(0o755)
        checkout = root / "checkout"
        checkout.mkdir(mode=0o755)
        for name in ("Makefile", "schema.sql", ".env.example"):
            shutil.copy2(REPO / name, checkout / name)
        shutil.copytree(REPO / "scripts", checkout / "scripts", ignore=shutil.ignore_patterns("autobahn"))
        self.checkouts.append(checkout)
        return checkout

    def start(self, checkout, **settings):
        run = Run(checkout, environment(**settings))
        self.runs.append(run)
        return run

    def run_to_end(self, checkout, timeout=30, **settings):
        """A run.sh expected to stop by itself (refused): its exit status and its output. Kept
        among the runs, so that should it serve instead, `clean` stops it and its server."""
        run = self.start(checkout, **settings)
        try:
            status = run.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run.sh did not stop within {timeout} s:\n{run.output()}", pytrace=False)
        with run.condition:
            run.condition.wait_for(lambda: run.ended, timeout=10)
        return status, run.output()

    def clusters(self, checkout):
        """Every cluster folder of `checkout`: its .pgdata and those run.sh made for it outside."""
        found = [checkout / ".pgdata"]
        if OUTSIDE.is_dir():
            for folder in OUTSIDE.iterdir():
                marker = folder / "checkout"
                if marker.is_file() and marker.read_text().strip() == str(checkout.resolve()):
                    found.append(folder)
        return [folder for folder in found if folder.exists()]

    def clean(self):
        for run in self.runs:
            run.finish()
        for checkout in self.checkouts:
            for cluster in self.clusters(checkout):
                subprocess.run([str(REPO / "scripts/pg-cluster.sh"), "stop", str(cluster)], capture_output=True, timeout=90)
                shutil.rmtree(cluster, ignore_errors=True)
        for root in self.roots:
            shutil.rmtree(root, ignore_errors=True)
        if not self.outside_existed and OUTSIDE.is_dir() and not any(OUTSIDE.iterdir()):
            OUTSIDE.rmdir()


@pytest.fixture
def sandbox():
    # bash cannot trap a signal that was ignored when it started: should this pytest have been
    # started ignoring SIGINT (in the background of a script), its children would be too, and
    # run.sh could not forward Ctrl-C. A handler of our own is reset to the default on exec.
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    box = Sandbox()
    try:
        yield box
    finally:
        box.clean()
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_second_run_in_the_same_checkout_says_why_at_once_and_leaves_the_first_alone(sandbox):
    checkout = sandbox.checkout()
    port, pg_port, other_port = free_ports(3)
    first = sandbox.start(checkout, PORT=port, PRIVATE_PG_PORT=pg_port)
    first.serving(port)
    assert healthz(port) == 200

    # The same PORT (the case) or another one: the checkout is what counts.
    for second_port in (port, other_port):
        started = time.monotonic()
        status, output = sandbox.run_to_end(checkout, PORT=second_port)
        elapsed = time.monotonic() - started
        assert status != 0
        assert elapsed < 5, elapsed
        assert re.fullmatch(rf"make run: another `make run` from this checkout is serving \(pid {first.process.pid}\) on port "
                            rf"{port}; stop it first[^\n]*\n", output), output
        assert healthz(port) == 200, "the first server's PostgreSQL was stopped"
        assert cluster_status(checkout / ".pgdata") == 0
    assert register(port, "after-the-second@example.com") == 200

    # Another checkout on the same PORT: refused before building, naming who has the port.
    elsewhere = sandbox.checkout()
    status, output = sandbox.run_to_end(elsewhere, PORT=port)
    assert status != 0
    assert re.fullmatch(rf"make run: port {port} is already in use \(by \S+, pid \d+\); [^\n]*\n", reasons(output)), output
    assert not (elsewhere / ".pgdata").exists()
    assert healthz(port) == 200

    assert first.interrupt() == 0, first.output()
    assert "private PostgreSQL stopped" in first.output()
    assert cluster_status(checkout / ".pgdata") == 3


def test_a_checkout_the_postgres_user_cannot_enter_serves_and_keeps_its_data(sandbox):
    checkout = sandbox.checkout(postgres_may_enter=False)
    as_root = os.geteuid() == 0
    if as_root:
        assert subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(checkout)], timeout=10).returncode != 0, \
            "the postgres user can enter the checkout: this test would not test what it says"
    port, pg_port = free_ports(2)

    run = sandbox.start(checkout, PORT=port, PRIVATE_PG_PORT=pg_port)
    folder, used_port = run.private_cluster()
    assert used_port == pg_port
    cluster = pathlib.Path(folder)
    run.serving(port)
    if as_root:
        # Outside the checkout, somewhere kept (not /tmp), and saying whose it is.
        assert cluster.parent == OUTSIDE, cluster
        assert (cluster / "checkout").read_text().strip() == str(checkout.resolve())
    else:
        assert str(cluster) == ".pgdata"  # the cluster is the user's own: the checkout is no obstacle
        cluster = checkout / ".pgdata"
    assert register(port, "kept@example.com") == 200
    assert run.interrupt() == 0, run.output()
    assert cluster_status(cluster) == 3

    again = sandbox.start(checkout, PORT=port)
    assert again.private_cluster() == (str(cluster) if as_root else ".pgdata", pg_port)
    again.serving(port)
    assert login(port, "kept@example.com") == 200, "the user registered in the first run is gone"
    assert again.interrupt() == 0, again.output()


def test_private_pg_port_is_honoured_on_every_run(sandbox):
    checkout = sandbox.checkout()
    cluster = checkout / ".pgdata"
    port, pg_first, pg_second = free_ports(3)

    run = sandbox.start(checkout, PORT=port, PRIVATE_PG_PORT=pg_first)
    assert run.private_cluster() == (".pgdata", pg_first)
    run.serving(port)
    assert psql(cluster, pg_first, "SELECT 1").stdout.strip() == "1"
    assert register(port, "first@example.com") == 200
    assert run.interrupt() == 0, run.output()

    # The issue: a PRIVATE_PG_PORT given after the first run was ignored.
    run = sandbox.start(checkout, PORT=port, PRIVATE_PG_PORT=pg_second)
    assert run.private_cluster() == (".pgdata", pg_second)
    run.serving(port)
    moved = psql(cluster, pg_second, "SELECT email FROM users")
    assert moved.returncode == 0 and moved.stdout.split() == ["first@example.com"], moved
    assert psql(cluster, pg_first, "SELECT 1").returncode != 0, "still listening on the old port"
    assert healthz(port) == 200
    assert run.interrupt() == 0, run.output()

    # Not given again: the cluster keeps the port it was moved to.
    run = sandbox.start(checkout, PORT=port)
    assert run.private_cluster() == (".pgdata", pg_second)
    run.serving(port)
    assert run.interrupt() == 0, run.output()


def test_a_cluster_that_was_already_running_is_used_and_left_running(sandbox):
    checkout = sandbox.checkout()
    cluster = checkout / ".pgdata"
    port, pg_port, pg_other = free_ports(3)
    started = subprocess.run([str(checkout / "scripts/pg-cluster.sh"), "start", str(cluster), str(pg_port)],
                             capture_output=True, text=True, timeout=90)
    assert started.returncode == 0, started.stderr

    run = sandbox.start(checkout, PORT=port)
    run.serving(port)
    assert "was already running" in run.output()
    assert run.interrupt() == 0, run.output()
    assert "private PostgreSQL stopped" not in run.output()
    assert cluster_status(cluster) == 0, "make run stopped a cluster it had not started"

    # Moving a running cluster would pull it from under whoever uses it: refused, untouched.
    status, output = sandbox.run_to_end(checkout, timeout=60, PORT=port, PRIVATE_PG_PORT=pg_other)
    assert status != 0
    assert f"it is running on port {pg_port}; stop it first" in reasons(output).splitlines()[0], output
    assert cluster_status(cluster) == 0
    assert psql(cluster, pg_port, "SELECT 1").stdout.strip() == "1"


def test_bad_settings_are_refused_before_anything_starts(sandbox):
    checkout = sandbox.checkout()
    port, pg_port = free_ports(2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        cases = [
            ({"PORT": "abc"}, r"make run: PORT must be a whole number in 0…65535, not 'abc'"),
            ({"PORT": busy}, rf"make run: port {busy} is already in use \(by python\S*, pid {os.getpid()}\); .*"),
            ({"PORT": port, "PRIVATE_PG_PORT": "70000"}, r"make run: PRIVATE_PG_PORT must be a TCP port number \(1…65535\), not '70000'"),
            ({"PORT": port, "CHAT_SERVER_BIN": "/nonexistent/ChatServer"},
             r"make run: CHAT_SERVER_BIN=/nonexistent/ChatServer is not an executable file"),
            # Refused before initdb; pg-cluster.sh's reason comes first, then make run's line.
            ({"PORT": port, "PRIVATE_PG_PORT": busy},
             rf"pg-cluster: port {busy} is already in use \(by python\S*, pid {os.getpid()}\); .*\n.*could not be started.*"),
        ]
        for settings, message in cases:
            started = time.monotonic()
            status, output = sandbox.run_to_end(checkout, timeout=60, **settings)
            assert status == 1, (settings, output)
            assert re.fullmatch(message + r"\n", reasons(output)), (settings, output)
            assert time.monotonic() - started < 10
            assert not (checkout / ".pgdata/data").exists(), settings
