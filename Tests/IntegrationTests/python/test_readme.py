"""The README's "Trying it with curl" block, run as it is by bash against a real server: only
the port 5001 is replaced by the test server's. Every command must succeed and print exactly
what the `#` lines under it say, ids aside (the same id in the README must be the same id in
the output, so the id captured into BOB_ID must be the one bob registered with)."""
import pathlib
import re
import subprocess

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def curl_block():
    text = README.read_text()
    assert "## Trying it with curl" in text, "README.md has no section 'Trying it with curl'"
    section = text.split("## Trying it with curl", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```sh\n(.*?)^```$", section, re.S | re.M)
    assert match, "no ```sh block in the README's 'Trying it with curl'"
    return match.group(1)


def steps(block):
    """[(command, expected output)]: a command runs on while its lines end in \\ or |; the
    `#` lines right after it are what it prints."""
    result = []
    lines = block.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        assert not line.startswith("#"), f"a '#' line with no command above it: {line!r}"
        command = [line]
        while command[-1].rstrip().endswith(("\\", "|")):
            index += 1
            command.append(lines[index])
        index += 1
        expected = []
        while index < len(lines) and lines[index].startswith("# "):
            expected.append(lines[index][2:])
            index += 1
        result.append(("\n".join(command), "\n".join(expected)))
    return result


def with_ids_numbered(text, ids):
    """Each distinct id becomes <id N>, N in order of first appearance (ids: that order so far)."""
    def number(match):
        if match.group(0) not in ids:
            ids.append(match.group(0))
        return f"<id {ids.index(match.group(0)) + 1}>"
    return UUID.sub(number, text)


def test_the_curl_walk_through_runs_verbatim_and_prints_what_it_says(server):
    block = curl_block()
    assert re.findall(r"localhost:(\d+)", block) and set(re.findall(r"localhost:(\d+)", block)) == {"5001"}, \
        "every request of the block should go to localhost:5001, the port the test replaces"
    walk = steps(block.replace("5001", str(server.port)))
    assert len(walk) >= 7, walk

    # After each command a marker line with its exit status; pipefail so a failing curl inside
    # a `| sed` counts.
    script = "".join(f'{command}\nprintf "\\n@@ {n} %s @@\\n" "$?"\n' for n, (command, _) in enumerate(walk))
    run = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp"})
    assert run.returncode == 0 and run.stderr == "", (run.returncode, run.stderr)
    outputs = re.findall(r"(.*?)\n@@ (\d+) (\d+) @@\n", run.stdout, re.S)
    assert [int(n) for _, n, _ in outputs] == list(range(len(walk))), run.stdout

    expected_ids, actual_ids = [], []
    for (command, expected), (output, _, status) in zip(walk, outputs):
        assert status == "0", f"failed with status {status}: {command}"
        assert with_ids_numbered(output.rstrip("\n"), actual_ids) == with_ids_numbered(expected, expected_ids), command
    # ann's and bob's: the id echoed from BOB_ID (and the lookup's) is the one bob registered with.
    assert len(actual_ids) == len(expected_ids) == 2, (expected_ids, actual_ids)

