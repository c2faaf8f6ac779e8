"""chat-cli-a and chat-cli-b against a real server: through a pseudo-terminal (pexpect) and
through pipes, as a person and as a script would use them."""
import io
import os
import subprocess
import time

import pexpect
import pytest

from conftest import Server

BIN = os.path.dirname(os.environ.get("CHAT_SERVER_BIN", "/nonexistent/ChatServer"))


def cli(name):
    return os.path.join(BIN, name)


def environment(server_url, **extra):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "TERM": "xterm", "NO_COLOR": "1",
           "CHAT_SERVER_URL": server_url}
    env.update(extra)
    return env


def account(server, name):
    user_id, email, _ = server.user(name)
    return user_id, email


def spawn(server, program, email, peer, transport="websocket", url=None):
    child = pexpect.spawn(cli(program), ["--email", email, "--password", "password1", "--to", peer, "--transport", transport],
                          env=environment(url or server.url), encoding="utf-8", timeout=15, dimensions=(40, 160))
    child.transcript = io.StringIO()
    child.logfile_read = child.transcript
    child.expect("chatting with")
    return child


def pipe(server, program, email, peer, text, url=None, password="password1"):
    return subprocess.run([cli(program), "--email", email, "--password", password, "--to", peer], input=text, text=True,
                          capture_output=True, env=environment(url or server.url), timeout=60)


def test_what_one_types_appears_in_the_other_with_confirmation(server):
    _, ann = account(server, "ann")
    _, bob = account(server, "bob")
    a = spawn(server, "chat-cli-a", ann, bob)
    b = spawn(server, "chat-cli-b", bob, ann, transport="polling")
    try:
        a.sendline("hello from the first terminal")
        a.expect(r"you: hello from the first terminal ✓")
        b.expect(r"ann: hello from the first terminal")
        b.sendline("and back from the second")
        b.expect(r"you: and back from the second ✓")
        a.expect(r"bob: and back from the second")
        a.sendline("/who")
        a.expect("peer: bob")
        a.sendline("/history 5")
        a.expect("you: hello from the first terminal")
        a.sendcontrol("d")
        a.expect(pexpect.EOF)
        b.sendcontrol("c")
        b.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        b.close(force=True)
    assert a.exitstatus == 0 and b.exitstatus == 0


def test_a_refused_message_shows_an_error_and_the_chat_goes_on(server):
    _, ann = account(server, "ann")
    _, bob = account(server, "bob")
    a = spawn(server, "chat-cli-a", ann, bob)
    try:
        a.sendline("x" * 17000)
        a.expect(r"✗ not sent \(message must be at most 16384 bytes\)")
        a.sendline("short one")
        a.expect("you: short one ✓")
        a.sendline("/quit")
        a.expect(pexpect.EOF)
    finally:
        a.close(force=True)


def test_pipes_send_each_line_and_exit_when_confirmed(server):
    _, ann = account(server, "ann")
    bob_id, bob = account(server, "bob")
    result = pipe(server, "chat-cli-a", ann, bob, "one\ntwo\n\nthree\n")
    assert result.returncode == 0, result.stderr
    assert [line.split("] ", 1)[1] for line in result.stdout.splitlines() if "] you:" in line] == ["you: one ✓", "you: two ✓", "you: three ✓"]
    # By id works too, and the other side sees the conversation.
    result = pipe(server, "chat-cli-b", bob, ann, "")
    assert result.returncode == 0
    assert "ann: one" in result.stdout and "ann: three" in result.stdout


def test_failures_exit_with_their_status_and_one_line(server):
    _, ann = account(server, "ann")
    _, bob = account(server, "bob")
    wrong = pipe(server, "chat-cli-a", ann, bob, "hi\n", password="not-the-password")
    assert wrong.returncode == 4
    assert wrong.stderr.strip().count("\n") == 0 and "wrong email or password" in wrong.stderr
    down = pipe(server, "chat-cli-a", ann, bob, "hi\n", url="http://127.0.0.1:1")
    assert down.returncode == 3
    assert "cannot reach the server" in down.stderr
    nobody = pipe(server, "chat-cli-a", ann, "nobody-at-all@example.com", "hi\n")
    assert nobody.returncode == 5
    refused = pipe(server, "chat-cli-a", ann, bob, "x" * 17000 + "\n")
    assert refused.returncode == 1
    assert "refused or not confirmed" in refused.stderr


def test_a_server_restart_is_survived_with_nothing_lost_or_doubled(database):
    first = Server(os.environ["CHAT_SERVER_BIN"], database)
    port = first.port
    _, ann = account(first, "ann")
    _, bob = account(first, "bob")
    a = spawn(first, "chat-cli-a", ann, bob)
    b = spawn(first, "chat-cli-b", bob, ann, transport="polling")
    second = None
    try:
        a.sendline("before the restart")
        b.expect("ann: before the restart")
        assert first.stop() == 0
        a.expect("reconnecting")
        b.expect("reconnecting")
        second = Server(os.environ["CHAT_SERVER_BIN"], database, {"PORT": str(port)})
        # Written while both clients are still away: they must show it once, from history.
        sent = pipe(second, "chat-cli-a", ann, bob, "while you were away\n")
        assert sent.returncode == 0, sent.stderr
        a.expect("reconnected", timeout=30)
        b.expect("reconnected", timeout=30)
        b.expect("ann: while you were away")
        a.sendline("after the restart")
        b.expect("ann: after the restart")
        b.sendline("/quit")
        b.expect(pexpect.EOF)
        a.sendline("/quit")
        a.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        b.close(force=True)
        if second:
            second.stop()
        first.stop()
    for client, name in ((a, "you"), (b, "ann")):
        transcript = client.transcript.getvalue()
        for text in ("before the restart", "while you were away", "after the restart"):
            assert transcript.count(f"{name}: {text}") == 1, (text, transcript)
