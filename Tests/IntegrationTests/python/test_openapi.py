"""The OpenAPI document at /api/openapi.json (issue 14), kept true three ways: it names every
route the README's API table does and no other; schemathesis (PyPI, an independent fuzzer)
runs every operation against the live server with every check it has — no 5xx, no status,
header, content type or body the document does not describe, no request it calls invalid
accepted; and the routes the document lists are the routes the server answers."""
import json
import os
import pathlib
import re
import subprocess
import tempfile
import uuid

import pytest
import requests

from conftest import Server
from test_socketio_chat import TRANSPORTS, connect

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def document(server):
    r = requests.get(server.url + "/api/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return r.json()


def template(path):
    """A path with its parameters made alike: /api/users/:id/block and /api/users/{userId}/block."""
    return re.sub(r"\{[^}]+\}|:[A-Za-z]+", "{}", path)


def documented(doc):
    return {(method.upper(), template(path)) for path, item in doc["paths"].items() for method in item if method.upper() in METHODS}


def readme_routes():
    """(method, path) of every row of the README's API table: its first cell names them, e.g.
    `POST /api/users/:id/block`, `DELETE /api/users/:id/block`, or `GET /`, `/chat.js`."""
    text = README.read_text()
    table = text[text.index("| request | success | errors |"):]
    table = table[:table.index("\n\n")]
    routes = set()
    for row in table.splitlines()[2:]:
        method = None
        for code in re.findall(r"`([^`]*)`", row.split(" | ")[0]):
            words = code.split()
            if words and words[0] in METHODS:
                method, path = words[0], words[1]
            elif words and words[0].startswith("/") and method:
                path = words[0]
            else:
                continue
            routes.add((method, template(path.split("?")[0])))
    return routes


def test_the_document_is_openapi_3_1_and_names_the_readmes_routes(server):
    doc = document(server)
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["version"] == subprocess.run([os.environ["CHAT_SERVER_BIN"], "--version"], capture_output=True, text=True).stdout.strip()
    in_readme = readme_routes()
    assert len(in_readme) > 15, in_readme
    assert documented(doc) == in_readme, {"only in the document": documented(doc) - in_readme, "only in the README": in_readme - documented(doc)}
    # Every operation has an id, a summary and its answers; every authenticated one says so.
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method.upper() not in METHODS:
                continue
            assert operation.get("operationId") and operation.get("summary") and operation.get("responses"), (method, path)


def test_every_documented_route_is_served(server):
    """No route in the document that the server does not have (a 404 with its `Not found`)."""
    doc = document(server)
    for path, item in doc["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for method in item:
            if method.upper() not in METHODS:
                continue
            r = requests.request(method.upper(), server.url + concrete, timeout=10)
            assert not (r.status_code == 404 and "Not found" in r.text), (method, path, r.text)


def fuzz(server, token, *operation_filter, at_least=5, peer=None):
    """schemathesis run against the live server; its whole report on failure."""
    command = [os.environ["SCHEMATHESIS"], "--config-file", str(pathlib.Path(__file__).with_name("schemathesis.toml")),
               "run", server.url + "/api/openapi.json", "--checks", "all",
               "-H", f"Authorization: Bearer {token}", "--max-examples", "50", "--seed", "14", "--generation-database", "none",
               "--workers", "1", "--request-timeout", "15", "--no-color", "--output-truncate", "false", *operation_filter]
    # Run in a scratch folder: schemathesis keeps caches in its working directory.
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=scratch,
                                env={**os.environ, "CHAT_FUZZ_PEER": peer or ""})
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    # It did test: as many cases as the operations' parameters give (a thousand or so signed
    # in, a dozen for logout, which takes none).
    generated = re.search(r"(\d+) generated", result.stdout)
    assert generated and int(generated.group(1)) >= at_least, result.stdout[-5000:]
    return result.stdout


@pytest.fixture(scope="module")
def fuzzed_server(database):
    # Bcrypt at its cheapest and no throttle but the shipped account one: the fuzzer logs in
    # and registers thousands of times.
    server = Server(os.environ["CHAT_SERVER_BIN"], database, {"BCRYPT_COST": "4"})
    yield server
    assert server.stop() == 0, "".join(server.output[-50:])


def test_schemathesis_finds_nothing_wrong(fuzzed_server):
    if not os.environ.get("SCHEMATHESIS"):
        pytest.fail("SCHEMATHESIS (the fuzzer's path) comes from `make test`", pytrace=False)
    fuzzer, _, token = fuzzed_server.user("fuzzer")
    # A conversation for the read marks: the peer wrote to the fuzzer.
    peer, _, peer_token = fuzzed_server.user("peer")
    client = connect(fuzzed_server, peer_token, TRANSPORTS["websocket"])
    try:
        assert client.call("send_message", {"to": fuzzer, "message": "hello, fuzzer"}, timeout=10)["ok"] is True
    finally:
        client.disconnect()
    # Logging out and changing the password end the token's session: each goes last, with a
    # token of its own, so the rest is fuzzed signed in.
    out = fuzz(fuzzed_server, token, "--exclude-operation-id", "logout", "--exclude-operation-id", "changePassword", at_least=500, peer=peer)
    for operation in ("changePassword", "logout"):
        _, _, own = fuzzed_server.user(operation.lower())
        out += fuzz(fuzzed_server, own, "--include-operation-id", operation)
    print(out)  # the fuzzer's summaries, shown with pytest -s
