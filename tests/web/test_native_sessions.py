"""
The sessions API (docs/design/native-api.md#session-list), the backends list
(docs/design/native-api.md#backends-list) and the store's part of /health
(docs/design/http.md#health-check).
"""

from __future__ import annotations

import json
import os
from typing import Any

import attrs

from clinvk.sessions import SessionRecord
from clinvk.sessions.disk import DiskSessionStore
from clinvk.sessions.files import SessionFiles
from tests.sessions.helpers import record
from tests.web._native import NativeTestCase


def session_id(n: int) -> str:
    """An id whose every prefix is unique among the test's sessions."""
    return f"{n:x}" * 32


def stored(n: int, **fields: Any) -> SessionRecord:
    """Record C{n}, last used C{n} minutes after the first."""
    return attrs.evolve(record(n, minutes=n, **fields), id=session_id(n))


class SessionsApiTests(NativeTestCase):
    def setUp(self) -> None:
        super().setUp()
        # Sessions 1..5: 1-3 claude, 4-5 codex; a higher number was used later.
        for n in range(1, 6):
            backend = "claude" if n <= 3 else "codex"
            status = "completed" if n % 2 else "error"
            self.successResultOf(self.server.store.create(stored(n, backend=backend, status=status)))

    def listing(self, query: str = "") -> dict[str, Any]:
        response = self.request("GET", "/api/v1/sessions" + query)
        self.assertEqual(response.code, 200, response.body)
        body: dict[str, Any] = json.loads(response.body)
        self.assertConforms(body, "SessionsResponseBody")
        return body

    def test_list(self) -> None:
        """All sessions, most recently used first; no default page size; typed body."""
        body = self.listing()
        self.assertEqual(list(body), ["$schema", "sessions", "total", "limit", "offset"])
        self.assertEqual([s["id"] for s in body["sessions"]], [session_id(n) for n in (5, 4, 3, 2, 1)])
        self.assertEqual((body["total"], body["limit"], body["offset"]), (5, 0, 0))
        first = body["sessions"][0]
        self.assertEqual(list(first)[:4], ["id", "backend", "created_at", "last_used"])
        for hidden in ("backend_session_id", "parent_id", "error_message", "metadata"):
            self.assertNotIn(hidden, first)

    def test_paging(self) -> None:
        body = self.listing("?limit=2&offset=1")
        self.assertEqual([s["id"] for s in body["sessions"]], [session_id(4), session_id(3)])
        self.assertEqual((body["total"], body["limit"], body["offset"]), (5, 2, 1))
        self.assertEqual(self.listing("?offset=9")["sessions"], [])
        self.assertEqual(self.listing("?limit=&offset=")["total"], 5)

    def test_filters(self) -> None:
        self.assertEqual({s["backend"] for s in self.listing("?backend=claude")["sessions"]}, {"claude"})
        self.assertEqual(self.listing("?backend=claude")["total"], 3)
        self.assertEqual(self.listing("?status=error")["total"], 2)
        self.assertEqual(self.listing("?status=bogus")["sessions"], [])

    def test_bad_integers(self) -> None:
        """Non-integers and negatives are 422 at query.<name>."""
        for query, error in (
            ("?limit=abc", {"message": "invalid integer", "location": "query.limit", "value": "abc"}),
            ("?offset=1.5", {"message": "invalid integer", "location": "query.offset", "value": "1.5"}),
            ("?limit=-1", {"message": "expected number >= 0", "location": "query.limit", "value": -1}),
            (
                "?limit=" + "9" * 20,
                {"message": "invalid integer", "location": "query.limit", "value": "9" * 20},
            ),
            (
                "?offset=" + "1" * 5000,
                {"message": "invalid integer", "location": "query.offset", "value": "1" * 5000},
            ),
        ):
            problem = self.problem(self.request("GET", "/api/v1/sessions" + query), 422)
            self.assertEqual(problem["errors"], [error], query)

    def test_get_by_prefix(self) -> None:
        body = self.session(session_id(3)[:8])
        self.assertEqual(body["id"], session_id(3))
        self.assertTrue(body["$schema"].endswith("/schemas/SessionInfo.json"))

    def not_found(self, method: str, reference: str) -> str:
        problem = self.problem(self.request(method, f"/api/v1/sessions/{reference}"), 404)
        self.assertEqual(problem["detail"], "session not found")
        [error] = problem["errors"]
        message: str = error["message"]
        return message

    def test_lookup_failures(self) -> None:
        """Ambiguous, unknown, uppercase and path-like references are 404 with their reason."""
        self.successResultOf(self.server.store.create(attrs.evolve(stored(6), id="abcd" + "0" * 28)))
        self.successResultOf(self.server.store.create(attrs.evolve(stored(7), id="abcd" + "1" * 28)))
        self.assertEqual(self.not_found("GET", "abcd"), "ambiguous prefix abcd: matches 2 sessions")
        self.assertEqual(self.not_found("GET", "ffff"), "no session found with prefix: ffff")
        self.assertEqual(
            self.not_found("GET", "ABCD"),
            "invalid session prefix: must contain only hex characters (0-9, a-f)",
        )
        self.assertEqual(
            self.not_found("DELETE", "ab..cd"), "invalid session prefix: contains path characters"
        )

    def test_empty_id_is_the_router_404(self) -> None:
        """An empty id is no route: a 404 problem (issue 16; docs/design/native-api.md#native-routing)."""
        response = self.request("GET", "/api/v1/sessions/")
        self.assertEqual((response.code, response.header("Content-Type")), (404, "application/problem+json"))
        self.assertEqual(json.loads(response.body)["detail"], "Unknown request URL: GET /api/v1/sessions/")

    def test_delete(self) -> None:
        """The answer echoes the id as sent; afterwards GET and DELETE are 404."""
        prefix = session_id(2)[:10]
        response = self.request("DELETE", f"/api/v1/sessions/{prefix}")
        self.assertEqual(response.code, 200)
        body = json.loads(response.body)
        self.assertConforms(body, "DeleteSessionResponseBody")
        self.assertEqual((body["deleted"], body["id"]), (True, prefix))
        self.assertTrue(body["$schema"].endswith("/schemas/DeleteSessionResponseBody.json"))
        self.not_found("GET", prefix)
        self.not_found("DELETE", prefix)
        self.assertEqual(self.listing()["total"], 4)


class BackendsAndHealthTests(NativeTestCase):
    installed: tuple[str, ...] = ("gemini", "claude")

    def test_backends(self) -> None:
        """Sorted by name, availability and live sessions included, typed body with its Link."""
        response = self.request("GET", "/api/v1/backends", headers={"Host": "localhost:8080"})
        self.assertTrue(
            response.body.startswith(b'{"$schema":"http://localhost:8080/schemas/BackendsResponseBody.json"')
        )
        self.assertEqual(response.header("Link"), '</schemas/BackendsResponseBody.json>; rel="describedBy"')
        self.assertConforms(json.loads(response.body), "BackendsResponseBody")
        self.assertEqual(
            json.loads(response.body)["backends"],
            [
                {"name": "claude", "available": True, "live": "off: server.live_idle_secs is 0"},
                {"name": "codex", "available": False, "live": "off: server.live_idle_secs is 0"},
                {"name": "gemini", "available": True, "live": "off: server.live_idle_secs is 0"},
            ],
        )
        self.use_server(installed=self.installed, live=True, config={"backends": {"gemini": {"live": False}}})
        backends = json.loads(self.request("GET", "/api/v1/backends").body)["backends"]
        self.assertEqual(
            [backend["live"] for backend in backends], ["live", "live", "off: backends.gemini.live is false"]
        )

    def test_health_store(self) -> None:
        """The store's state and count are part of /health."""
        self.post("/api/v1/prompt", {"backend": "claude", "prompt": "x", "dry_run": True})
        body = json.loads(self.request("GET", "/health").body)
        self.assertConforms(body, "HealthResponseBody")
        self.assertEqual(body["status"], "degraded")
        self.assertEqual(body["session_store"], {"available": True, "session_count": 1})

    def test_unreadable_store_is_unhealthy(self) -> None:
        """A store that cannot be listed makes the server unhealthy (still 200)."""
        blocker = self.mktemp()
        with open(blocker, "w"):
            pass
        self.use_server(store=DiskSessionStore(SessionFiles(os.path.join(blocker, "sessions"))))
        response = self.request("GET", "/health")
        self.assertEqual(response.code, 200)
        body = json.loads(response.body)
        self.assertConforms(body, "HealthResponseBody")
        self.assertEqual(body["status"], "unhealthy")
        self.assertFalse(body["session_store"]["available"])
        self.assertEqual(body["session_store"]["session_count"], 0)
        self.assertTrue(body["session_store"]["error"])
        problem = self.problem(self.request("GET", "/api/v1/sessions"), 500)
        self.assertEqual(problem["detail"], "failed to list sessions")
        self.assertTrue(problem["errors"][0]["message"])
        problem = self.problem(self.request("GET", "/api/v1/sessions/abcd1234"), 500)
        self.assertEqual(problem["detail"], "failed to read session")


class NativeRoutingTests(NativeTestCase):
    """
    Routing of the native paths (docs/design/native-api.md#native-routing) and
    availability changes (docs/design/cli-runs.md#availability).
    """

    def test_exact_paths_and_methods(self) -> None:
        response = self.request("POST", "/api/v1/backends", {})
        self.assertEqual((response.code, response.body, response.header("Allow")), (405, b"", "GET"))
        trailing = self.request("GET", "/api/v1/backends/")
        self.assertEqual((trailing.code, json.loads(trailing.body)["status"]), (404, 404))
        self.assertEqual(self.request("OPTIONS", "/api/v1/prompt").code, 405)
        self.assertEqual(self.request("GET", "/api/v1/prompt").header("Allow"), "POST")

    def test_schema_url_scheme(self) -> None:
        """http for a local Host, https for any other."""
        for host, scheme in (("localhost:8080", "http"), ("api.example.com", "https")):
            response = self.request("GET", "/api/v1/backends", headers={"Host": host})
            self.assertEqual(
                json.loads(response.body)["$schema"], f"{scheme}://{host}/schemas/BackendsResponseBody.json"
            )

    def test_removed_cli(self) -> None:
        """A CLI removed from PATH fails runs at once, and shows in the list within 30 seconds."""
        installed = {"claude", "codex", "gemini"}
        self.use_server(installed=installed)
        self.request("GET", "/api/v1/backends")
        installed.discard("codex")
        answer = self.post("/api/v1/prompt", {"backend": "codex", "prompt": "x", "dry_run": True})
        self.assertEqual(answer["error"], 'backend "codex" is not available')
        listed = json.loads(self.request("GET", "/api/v1/backends").body)["backends"]
        self.assertTrue(listed[1]["available"])
        self.reactor.advance(30)
        listed = json.loads(self.request("GET", "/api/v1/backends").body)["backends"]
        self.assertFalse(listed[1]["available"])
