"""Finding people (issue 11, item 5): GET /api/users?q= by the start of a username or email,
paged, on the real server and PostgreSQL."""
import uuid

import requests

from conftest import psql


def register(server, username, email):
    r = requests.post(server.url + "/api/auth/register", json={"username": username, "email": email, "password": "password1"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["user"]


def search(server, token, **params):
    return requests.get(server.url + "/api/users", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_people_are_found_by_the_start_of_their_name_or_email_page_by_page(server):
    tag = uuid.uuid4().hex[:6]  # this test's people only
    _, _, token = server.user("searcher")
    people = [(f"Zo{tag}ë", f"zoe-{tag}@x.io"), (f"zo{tag}_b", f"other-{tag}@x.io"), (f"ZO{tag}a", f"a-{tag}@x.io"),
              (f"nobody-{tag}", f"zo{tag}@mail.io"), (f"zo{tag}%", f"pct-{tag}@x.io")]
    for username, email in people:
        register(server, username, email)
    found, after, pages = [], None, 0
    while True:
        r = search(server, token, q=f"  zo{tag}", limit=2, **({"after": after} if after else {}))
        assert r.status_code == 200, r.text
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        body = r.json()
        assert set(body) == {"users", "next"} and len(body["users"]) <= 2
        found += body["users"]
        after, pages = body["next"], pages + 1
        if after is None:
            break
    # Usernames first in byte order of their lower case, then whoever only the email matched.
    assert [u["username"] for u in found] == [f"zo{tag}%", f"zo{tag}_b", f"ZO{tag}a", f"Zo{tag}ë", f"nobody-{tag}"]
    assert pages == 3
    assert set(found[0]) == {"id", "email", "username"}
    # %, _ and \\ are plain characters.
    assert [u["username"] for u in search(server, token, q=f"zo{tag}%").json()["users"]] == [f"zo{tag}%"]
    assert [u["username"] for u in search(server, token, q=f"zo{tag}_").json()["users"]] == [f"zo{tag}_b"]
    assert all(u["username"].startswith("%") or u["email"].startswith("%") for u in search(server, token, q="%").json()["users"])
    assert search(server, token, q=f"ZOË-no-{tag}").json() == {"users": [], "next": None}
    # Today's exact lookup is unchanged.
    assert search(server, token, email=f"ZOE-{tag}@x.io").json()["username"] == f"Zo{tag}ë"


def test_bad_searches_get_a_clear_refusal(server):
    _, _, token = server.user("searcher")
    for params, status, error in [({"q": ""}, 400, "q must be 1 to 64 characters"), ({"q": "x" * 65}, 400, "q must be 1 to 64 characters"),
                                  ({"q": "a", "after": "nope"}, 400, "after must be the next of a previous page"),
                                  ({"q": "a", "after": f"0.{uuid.uuid4()}"}, 400, "after must be the next of a previous page"),
                                  ({"q": "a", "limit": "many"}, 400, "limit must be a whole number"),
                                  ({}, 400, "query parameter email is required")]:
        r = search(server, token, **params)
        assert (r.status_code, r.json().get("error")) == (status, error), (params, r.text)
    assert search(server, token, q="a", limit="100000").status_code == 200  # clamped to 50
    assert len(search(server, token, q="s", limit="100000").json()["users"]) <= 50
    assert requests.get(server.url + "/api/users", params={"q": "a"}, timeout=10).status_code == 401


def test_a_search_reads_an_index_range_not_the_table(server, database):
    """The index gives the page in order (no sort of every match): with scans that would hide
    it on a table this small turned off, the plan is an index range read, stopped at the limit."""
    plan = psql(database, """SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN SELECT id FROM users WHERE lower(username) COLLATE "C" LIKE lower('zo%') ESCAPE '\\'
                             ORDER BY lower(username) COLLATE "C", id LIMIT 20""")
    assert "users_username_prefix_idx" in plan and "Sort" not in plan, plan
    plan = psql(database, """SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN SELECT id FROM users WHERE lower(email) COLLATE "C" LIKE lower('zo%') ESCAPE '\\'
                             ORDER BY lower(email) COLLATE "C", id LIMIT 20""")
    assert "users_email_prefix_idx" in plan and "Sort" not in plan, plan
