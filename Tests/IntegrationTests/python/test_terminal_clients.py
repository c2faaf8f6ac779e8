"""chat-cli-a and chat-cli-b against a real server: through a pseudo-terminal (pexpect) and
through pipes, as a person and as a script would use them."""
import io
import os
import signal
import subprocess
import time

import pexpect
import pytest

from conftest import Server, psql

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
    # Only the lines' outcomes: no banner, no history.
    assert [line.split("] ", 1)[1] for line in result.stdout.splitlines()] == ["you: one ✓", "you: two ✓", "you: three ✓"]
    again = pipe(server, "chat-cli-a", ann, bob, "four\n")
    assert again.returncode == 0 and [line.split("] ", 1)[1] for line in again.stdout.splitlines()] == ["you: four ✓"]
    assert pipe(server, "chat-cli-b", bob, ann, "").stdout == ""
    # The other side sees the conversation.
    b = spawn(server, "chat-cli-b", bob, ann)
    try:
        b.expect("ann: one")
        b.expect("ann: four")
    finally:
        b.close(force=True)


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
    # The refused line is echoed by its start, not in full.
    assert refused.stdout.strip() == "✗ not sent (message must be at most 16384 bytes): " + "x" * 60 + "… (17000 bytes)"


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


def test_make_chat_goes_to_the_port_make_run_serves_from_the_same_settings(server, tmp_path):
    """Issue 9: `PORT=5301 make chat-a` tried port 5001. scripts/chat.sh (make chat-a) asks
    `ChatServer address`, which reads PORT from the environment or .env as the server does."""
    ann_id, ann, _ = server.user("ann")
    _, bob, bob_token = server.user("bob")
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for script in ("chat.sh", "common.sh"):
        subprocess.run(["cp", os.path.join(repo, "scripts", script), str(checkout / "scripts")], check=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), "NO_COLOR": "1", "CHAT_BIN_DIR": BIN}
    arguments = [str(checkout / "scripts/chat.sh"), "a", "--email", ann, "--password", "password1", "--to", bob]

    (checkout / ".env").write_text(f"JWT_SECRET=unused\nPORT={server.port}\n")
    from_env_file = subprocess.run(arguments, input="found through .env\n", text=True, capture_output=True, env=env, timeout=60)
    assert from_env_file.returncode == 0, from_env_file.stderr

    (checkout / ".env").write_text("PORT=1\n")  # the environment wins over .env, as for the server
    from_environment = subprocess.run(arguments, input="found through PORT\n", text=True, capture_output=True,
                                      env={**env, "PORT": str(server.port)}, timeout=60)
    assert from_environment.returncode == 0, from_environment.stderr

    history = [message["content"] for message in server.history(bob_token, ann_id)]
    assert history == ["found through .env", "found through PORT"]


def restart_on(port, database, first, **extra):
    """Stops `first` and starts a server on the same port (what clients reconnect to)."""
    assert first.stop() == 0
    return Server(os.environ["CHAT_SERVER_BIN"], database, {"PORT": str(port), **extra})


def count(database, text):
    return int(psql(database, f"SELECT count(*) FROM messages WHERE content = '{text}'"))


def test_lines_typed_while_disconnected_or_in_flight_at_a_kill_9_are_sent_once(database):
    first = Server(os.environ["CHAT_SERVER_BIN"], database)
    port = first.port
    _, ann = account(first, "ann")
    _, bob = account(first, "bob")
    a = spawn(first, "chat-cli-a", ann, bob)
    b = spawn(first, "chat-cli-b", bob, ann, transport="polling")
    second = None
    try:
        a.sendline("in flight at the kill")
        first.stop(signal.SIGKILL)  # perhaps before its ack, perhaps after its commit
        a.expect("reconnecting")
        for n in range(3):
            a.sendline(f"typed in the tunnel {n}")
            a.expect(f"pending \\(not connected\\): typed in the tunnel {n}")
        second = Server(os.environ["CHAT_SERVER_BIN"], database, {"PORT": str(port)})
        a.expect("reconnected", timeout=30)
        b.expect("ann: in flight at the kill", timeout=30)
        for n in range(3):
            a.expect(f"you: typed in the tunnel {n} ✓")
            b.expect(f"ann: typed in the tunnel {n}", timeout=30)
        a.sendline("/quit")
        a.expect(pexpect.EOF)
        b.sendline("/quit")
        b.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        b.close(force=True)
        if second:
            second.stop()
        first.stop()
    for text in ["in flight at the kill"] + [f"typed in the tunnel {n}" for n in range(3)]:
        assert count(database, text) == 1, text
        assert b.transcript.getvalue().count(f"ann: {text}") == 1, text
        assert a.transcript.getvalue().count(f"you: {text} ✓") == 1, text


def test_an_expired_token_means_logging_in_again_not_reconnecting_forever(database):
    short = {"TOKEN_LIFETIME_SECONDS": "2"}
    first = Server(os.environ["CHAT_SERVER_BIN"], database, short)
    port = first.port
    _, ann = account(first, "ann")
    _, bob = account(first, "bob")
    a = spawn(first, "chat-cli-a", ann, bob)
    second = None
    try:
        time.sleep(2.5)  # the token the client holds has expired
        second = restart_on(port, database, first, **short)
        a.expect("reconnected", timeout=30)
        a.sendline("still here")
        a.expect("you: still here ✓")
        a.sendline("/quit")
        a.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        if second:
            second.stop()
        first.stop()
    assert count(database, "still here") == 1


def test_a_reconnect_after_history_reprints_nothing(database):
    first = Server(os.environ["CHAT_SERVER_BIN"], database)
    port = first.port
    _, ann = account(first, "ann")
    _, bob = account(first, "bob")
    a = spawn(first, "chat-cli-a", ann, bob)
    second = None
    try:
        for text in ("first line", "second line"):
            a.sendline(text)
            a.expect(f"you: {text} ✓")
        a.sendline("/history 5")
        a.expect("you: second line ✓")
        second = restart_on(port, database, first)
        a.expect("reconnected", timeout=30)
        a.sendline("after")
        a.expect("you: after ✓")
        a.sendline("/quit")
        a.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        if second:
            second.stop()
        first.stop()
    transcript = a.transcript.getvalue()
    # Once when sent, once by /history; the reconnect adds nothing.
    assert transcript.count("you: first line") == 2 and transcript.count("you: second line") == 2, transcript


def test_what_is_sent_from_another_device_appears_live(server):
    _, ann = account(server, "ann")
    _, bob = account(server, "bob")
    laptop = spawn(server, "chat-cli-a", ann, bob)
    try:
        sent = pipe(server, "chat-cli-a", ann, bob, "from my phone\n")
        assert sent.returncode == 0, sent.stderr
        laptop.expect("you: from my phone ✓")
        laptop.sendline("/quit")
        laptop.expect(pexpect.EOF)
    finally:
        laptop.close(force=True)


def test_the_line_editor_and_the_typing_indicator(server):
    _, ann = account(server, "ann")
    _, bob = account(server, "bob")
    a = spawn(server, "chat-cli-a", ann, bob)
    b = spawn(server, "chat-cli-b", bob, ann, transport="polling")
    try:
        a.sendline("first")  # a conversation: typing is relayed from now on
        b.expect("ann: first")
        # ← → Home End, a character inserted in the middle, Backspace and Delete.
        a.send("helo wrld")
        a.send("\x1b[D\x1b[D\x1b[D")   # ← ← ←
        a.send("o")                     # helo world
        a.send("\x1b[H")                # Home
        a.send("\x1b[C\x1b[C\x1b[C")   # → → →
        a.send("l")                     # hello world
        a.send("\x1b[F!\r")             # End, then "!"
        a.expect("you: hello world! ✓")
        b.expect("ann: hello world!")
        # Ctrl-W, Ctrl-U, Tab never literal.
        a.send("drop these words\x17\x17keep\tit\r")
        a.expect("you: drop keepit ✓")
        a.send("gone\x15back\r")
        a.expect("you: back ✓")
        # ↑ brings the last lines back.
        a.send("\x1b[A\x1b[A\r")
        a.expect("you: drop keepit ✓")
        b.expect("ann: drop keepit")
        b.expect("ann: back")
        b.expect("ann: drop keepit")
        # While ann writes, bob's prompt says so; when her line empties, it stops. (Each line
        # above told bob twice, faster than a person types: the server's typing bucket per
        # socket, 8 at once and 4 a second, refills first.)
        time.sleep(2)
        a.send("writing")
        b.expect(r"ann \(typing…\)>")
        a.send("\x15")
        b.expect(r"ann> ")
        # A long line wraps and is sent whole.
        long_text = " ".join(f"word{n}" for n in range(60))
        a.send(long_text[:-3])
        a.send("\x1b[D\x1b[D")
        a.send("\x1b[F" + long_text[-3:] + "\r")
        a.expect("you: " + long_text[:40])
        b.expect("ann: " + long_text[:40])
        a.sendline("/quit")
        a.expect(pexpect.EOF)
        b.sendline("/quit")
        b.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        b.close(force=True)
    assert psql(server.database_url, f"SELECT count(*) FROM messages WHERE content = '{long_text}'") == "1"


def test_read_marks_and_the_conversation_list(server):
    _, ann = account(server, "ann")
    _, bob = account(server, "bob")
    _, carol = account(server, "carol")
    a = spawn(server, "chat-cli-a", ann, bob)
    b = spawn(server, "chat-cli-b", bob, ann)
    try:
        a.sendline("are you there")
        a.expect("you: are you there ✓")
        b.expect("ann: are you there")
        # Shown to bob is read by bob: ann's message gets its second tick.
        a.expect("✓✓ bob read “are you there”")
        sent = pipe(server, "chat-cli-a", carol, bob, "from carol\n")
        assert sent.returncode == 0, sent.stderr
        b.expect("carol: from carol")  # a name, not the start of an id
        a.sendline("/who")
        a.expect("peer: bob .* — online")
        b.sendline("/list")
        b.expect(r"carol \S+ — from carol \(1 unread\)")
        b.expect(r"\* ann \S+ — are you there")
        a.sendline("/list")
        a.expect(r"\* bob \S+ — you: are you there")
        a.sendline("/quit")
        a.expect(pexpect.EOF)
        b.sendline("/quit")
        b.expect(pexpect.EOF)
    finally:
        a.close(force=True)
        b.close(force=True)
    assert "unread" not in a.transcript.getvalue().split("/list")[-1]
