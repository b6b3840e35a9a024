"""
Tests for the meta routes: /health (docs/design/http.md#health-check), the
OpenAPI documents, /docs and /schemas (docs/design/http.md#openapi-docs).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import yaml
from openapi_spec_validator import validate

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from clinvk.openapi import build_document, downgrade_to_30
from clinvk.schemas import SchemaSet
from clinvk.web.explorer import ExplorerPage
from clinvk.web.meta import HEALTH, OpenAPIDocuments, format_uptime
from tests.helpers import call, make_root
from tests.web._native import NativeTestCase

INDEX = {
    "name": "clinvk",
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/health",
    "apis": {"native": "/api/v1", "openai": "/openai/v1", "anthropic": "/anthropic/v1"},
}


class IndexTests(SynchronousTestCase):
    """GET /: where to go next (issue 16)."""

    def test_index(self) -> None:
        """A small JSON index of the documentation, the health check and the APIs."""
        root, _ = make_root()
        response = call(self, root, "GET", "/")
        self.assertEqual((response.code, response.header("Content-Type")), (200, "application/json"))
        self.assertEqual(json.loads(response.body), INDEX)
        self.assertIsNotNone(response.header("X-Request-Id"))

    def test_links_are_served(self) -> None:
        """Every link of the index answers (the API prefixes with their own routes)."""
        root, _ = make_root()
        index = json.loads(call(self, root, "GET", "/").body)
        for name in ("docs", "openapi", "health"):
            self.assertEqual(call(self, root, "GET", index[name]).code, 200, name)
        apis = index["apis"]
        self.assertEqual(call(self, root, "GET", apis["native"] + "/backends").code, 200)
        self.assertEqual(call(self, root, "GET", apis["openai"] + "/models").code, 200)
        # An empty request: refused by the route, which is there.
        messages = call(self, root, "POST", apis["anthropic"] + "/messages", data=b"{}")
        self.assertEqual(json.loads(messages.body)["error"]["type"], "invalid_request_error")

    def test_mounted(self) -> None:
        """Mounted below another path, with or without the trailing slash, the links include it."""
        root, _ = make_root()
        parent = Resource()
        parent.putChild(b"clinvk", root)
        for path in ("/clinvk/", "/clinvk"):
            body = json.loads(call(self, parent, "GET", path).body)
            self.assertEqual(body["docs"], "/clinvk/docs")
            self.assertEqual(body["apis"]["openai"], "/clinvk/openai/v1")

    def test_methods(self) -> None:
        """Only GET: another method is the router's empty 405; // is no index."""
        root, _ = make_root()
        for method in ("POST", "HEAD"):
            response = call(self, root, method, "/")
            self.assertEqual((response.code, response.body, response.header("Allow")), (405, b"", "GET"))
        self.assertEqual(call(self, root, "GET", "//").body, b"404 page not found\n")


class IndexGuardsTests(NativeTestCase):
    """The index needs no key, like the pages it links to, but is rate-limited."""

    def setUp(self) -> None:
        self.use_server(
            api_keys=("k1",),
            config={
                "server": {
                    "rate_limit_enabled": True,
                    "rate_limit_rps": 1,
                    "rate_limit_burst": 2,
                    "cors_allowed_origins": ["http://localhost:3000"],
                }
            },
        )

    def test_public_limited_cors(self) -> None:
        headers = {"Origin": "http://localhost:3000"}
        response = self.request("GET", "/", headers=headers)
        self.assertEqual(json.loads(response.body), INDEX)
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "http://localhost:3000")
        self.assertEqual(self.request("GET", "/nope").code, 401)
        self.assertEqual(self.request("GET", "/").code, 429)


class HealthTests(SynchronousTestCase):
    """GET /health."""

    def health(self, root: object, **kwargs: object) -> dict[str, object]:
        response = call(self, root, "GET", "/health", **kwargs)  # type: ignore[arg-type]
        self.assertEqual(response.code, 200)
        body: dict[str, object] = json.loads(response.body)
        return body

    def test_all_installed(self) -> None:
        """With every CLI installed the status is ok and backends are sorted."""
        root, _ = make_root()
        body = self.health(root)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["version"], "1.0.0")
        self.assertEqual(
            body["backends"],
            [
                {"name": "claude", "available": True},
                {"name": "codex", "available": True},
                {"name": "gemini", "available": True},
            ],
        )
        self.assertNotIn("uptime_millis", body)
        self.assertEqual(next(iter(body)), "$schema")

    def test_degraded_still_200(self) -> None:
        """A missing CLI makes the status degraded, still with 200."""
        root, _ = make_root(installed=["claude", "gemini"])
        body = self.health(root)
        self.assertEqual(body["status"], "degraded")
        self.assertIn({"name": "codex", "available": False}, body["backends"])

    def test_availability_cached_30_seconds(self) -> None:
        """An installed CLI shows up once the 30-second cache expires."""
        installed = {"claude", "codex"}
        root, clock = make_root(installed=installed)
        self.assertEqual(self.health(root)["status"], "degraded")
        installed.add("gemini")
        clock.advance(29.9)
        self.assertEqual(self.health(root)["status"], "degraded")
        clock.advance(0.1)
        self.assertEqual(self.health(root)["status"], "ok")

    def test_uptime(self) -> None:
        """uptime_ms counts on the reactor clock; uptime is rendered like 2m31s."""
        root, clock = make_root()
        clock.advance(151.204)
        body = self.health(root)
        self.assertEqual(body["uptime_ms"], 151204)
        self.assertEqual(body["uptime"], "2m31s")

    def test_schema_url_and_link(self) -> None:
        """$schema is http for localhost, https otherwise; Link names the schema."""
        root, _ = make_root()
        local = call(self, root, "GET", "/health")
        self.assertEqual(local.header("Link"), '</schemas/HealthResponseBody.json>; rel="describedBy"')
        self.assertEqual(
            json.loads(local.body)["$schema"], "http://localhost:8080/schemas/HealthResponseBody.json"
        )
        remote = self.health(root, base="http://api.example.com")
        self.assertEqual(remote["$schema"], "https://api.example.com/schemas/HealthResponseBody.json")
        loopback = self.health(root, base="http://127.0.0.1:9000")
        self.assertEqual(loopback["$schema"], "http://127.0.0.1:9000/schemas/HealthResponseBody.json")

    def test_matches_its_schema(self) -> None:
        """The body validates against the HealthResponseBody schema it names."""
        root, _ = make_root(installed=["codex"])
        _, problems = SchemaSet.from_package().validate("HealthResponseBody", self.health(root))
        self.assertEqual(problems, [])


class UptimeFormatTests(SynchronousTestCase):
    """The reference's uptime rendering."""

    def test_examples(self) -> None:
        """Seconds, minutes and hours, rounded to the nearest second, halves up."""
        cases = {
            0: "0s",
            499: "0s",
            500: "1s",
            45_000: "45s",
            205_000: "3m25s",
            3_600_000: "1h0m0s",
            176_527_000: "49h2m7s",
            59_500: "1m0s",
        }
        for milliseconds, text in cases.items():
            self.assertEqual(format_uptime(milliseconds), text, milliseconds)


class OpenAPITests(SynchronousTestCase):
    """The four OpenAPI documents."""

    def setUp(self) -> None:
        self.root, _ = make_root()

    def test_json_31(self) -> None:
        """/openapi.json is a valid OpenAPI 3.1 document listing the served operations."""
        response = call(self, self.root, "GET", "/openapi.json")
        self.assertEqual(response.header("Content-Type"), "application/vnd.oai.openapi+json")
        document = json.loads(response.body)
        validate(document)
        self.assertEqual(document["openapi"], "3.1.0")
        self.assertEqual(document["info"]["title"], "clinvoker API")
        health = document["paths"]["/health"]["get"]
        self.assertEqual(
            (health["operationId"], health["tags"], health["summary"]),
            ("healthCheck", ["Health"], "Health check"),
        )

    def test_components_are_the_validation_schemas(self) -> None:
        """Every schema file the server validates with is a component."""
        document = json.loads(call(self, self.root, "GET", "/openapi.json").body)
        schemas = SchemaSet.from_package()
        self.assertEqual(set(document["components"]["schemas"]), set(schemas.names))
        self.assertEqual(
            document["components"]["schemas"]["ErrorModel"]["properties"]["errors"]["items"],
            {"$ref": "#/components/schemas/ErrorDetail"},
        )
        # A property named $schema is part of the body, not a keyword to drop.
        self.assertIn("$schema", document["components"]["schemas"]["HealthResponseBody"]["properties"])

    def test_yaml_and_30(self) -> None:
        """The YAML and 3.0 variants carry the same operations and are valid."""
        by_path = {}
        for path, content_type in (
            ("/openapi.yaml", "application/vnd.oai.openapi+yaml"),
            ("/openapi-3.0.json", "application/vnd.oai.openapi+json"),
            ("/openapi-3.0.yaml", "application/vnd.oai.openapi+yaml"),
        ):
            response = call(self, self.root, "GET", path)
            self.assertEqual(response.header("Content-Type"), content_type)
            by_path[path] = yaml.safe_load(response.body)
            validate(by_path[path])
        self.assertEqual(
            by_path["/openapi.yaml"], json.loads(call(self, self.root, "GET", "/openapi.json").body)
        )
        self.assertEqual(by_path["/openapi-3.0.json"]["openapi"], "3.0.3")
        self.assertEqual(by_path["/openapi-3.0.json"], by_path["/openapi-3.0.yaml"])

    def test_native_operations(self) -> None:
        """
        Every operation of the native API is documented with the request
        and response schemas the server validates and answers with.
        """
        document = json.loads(call(self, self.root, "GET", "/openapi.json").body)
        paths = document["paths"]
        expected = {
            ("post", "/api/v1/prompt"): ("PromptRequest", "PromptResponse"),
            ("post", "/api/v1/parallel"): ("ParallelRequest", "ParallelResponseBody"),
            ("post", "/api/v1/chain"): ("ChainRequest", "ChainResponseBody"),
            ("post", "/api/v1/compare"): ("CompareRequest", "CompareResponseBody"),
            ("get", "/api/v1/backends"): (None, "BackendsResponseBody"),
            ("get", "/api/v1/sessions"): (None, "SessionsResponseBody"),
            ("get", "/api/v1/sessions/{id}"): (None, "SessionInfo"),
            ("delete", "/api/v1/sessions/{id}"): (None, "DeleteSessionResponseBody"),
        }
        for (method, path), (request_schema, response_schema) in expected.items():
            operation = paths[path][method]
            if request_schema is not None:
                self.assertEqual(
                    operation["requestBody"]["content"]["application/json"]["schema"],
                    {"$ref": f"#/components/schemas/{request_schema}"},
                )
            self.assertEqual(
                operation["responses"]["200"]["content"]["application/json"]["schema"],
                {"$ref": f"#/components/schemas/{response_schema}"},
            )
        self.assertIn("application/x-ndjson", paths["/api/v1/prompt"]["post"]["responses"]["200"]["content"])
        self.assertEqual(
            [p["name"] for p in paths["/api/v1/sessions"]["get"]["parameters"]],
            ["backend", "status", "limit", "offset"],
        )
        legacy = json.loads(call(self, self.root, "GET", "/openapi-3.0.json").body)
        self.assertNotIn("if", legacy["components"]["schemas"]["PromptRequest"])

    def test_operations_match_routes(self) -> None:
        """Every documented path is served with its method, so the document cannot drift."""
        document = json.loads(call(self, self.root, "GET", "/openapi.json").body)
        for template, item in document["paths"].items():
            path = template.replace("{id}", "0123abcd")
            for method in item:
                response = call(self, self.root, method.upper(), path)
                # Not the router's 404, plain text or a problem (a 404
                # problem for an unknown session comes from the route itself).
                self.assertNotEqual(response.header("Content-Type"), "text/plain; charset=utf-8", path)
                self.assertNotIn(b"Unknown request URL", response.body, path)
                self.assertEqual(call(self, self.root, "PUT", path).code, 405, path)


class OpenAPIDocumentsTests(SynchronousTestCase):
    """Each served form of the OpenAPI document is rendered on first use, once."""

    def setUp(self) -> None:
        self.document = build_document([HEALTH], SchemaSet.from_package())
        self.documents = OpenAPIDocuments(self.document)

    def test_forms(self) -> None:
        """Each version and form is the document, or its 3.0 downgrade, in that syntax."""
        legacy = downgrade_to_30(self.document)
        self.assertEqual(json.loads(self.documents.rendered("3.1", "json")), self.document)
        self.assertEqual(yaml.safe_load(self.documents.rendered("3.1", "yaml")), self.document)
        self.assertEqual(json.loads(self.documents.rendered("3.0", "json")), legacy)
        self.assertEqual(yaml.safe_load(self.documents.rendered("3.0", "yaml")), legacy)

    def test_rendered_once(self) -> None:
        """A second request for a form is answered with the text rendered for the first."""
        for version in ("3.1", "3.0"):
            for form in ("json", "yaml"):
                first = self.documents.rendered(version, form)
                self.assertIs(self.documents.rendered(version, form), first)


class SchemasRouteTests(SynchronousTestCase):
    """/schemas/<name>."""

    def test_with_and_without_suffix(self) -> None:
        """A component is served as written, with or without .json."""
        root, _ = make_root()
        expected = SchemaSet.from_package().schema("ErrorModel")
        for path in ("/schemas/ErrorModel", "/schemas/ErrorModel.json"):
            response = call(self, root, "GET", path)
            self.assertEqual(response.header("Content-Type"), "application/json")
            self.assertEqual(json.loads(response.body), expected)

    def test_unknown_is_null(self) -> None:
        """An unknown name answers null, as the reference does."""
        root, _ = make_root()
        response = call(self, root, "GET", "/schemas/Nope.json")
        self.assertEqual((response.code, response.body), (200, b"null\n"))


class DocsTests(SynchronousTestCase):
    """The /docs explorer (docs/design/decisions.md#d8-offline-docs)."""

    def setUp(self) -> None:
        root, _ = make_root()
        self.response = call(self, root, "GET", "/docs")
        self.page = self.response.body.decode("utf-8")

    def test_page(self) -> None:
        """An HTML page titled 'clinvoker API Reference' that loads openapi.json."""
        self.assertEqual(self.response.code, 200)
        self.assertEqual(self.response.header("Content-Type"), "text/html; charset=utf-8")
        self.assertIn("<title>clinvoker API Reference</title>", self.page)
        self.assertIn('new URL("openapi.json", base)', self.page)

    def test_no_external_urls(self) -> None:
        """Nothing in the page points at another host."""
        self.assertEqual(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", self.page), [])
        self.assertNotIn("<script src", self.page)
        self.assertEqual(re.findall(r"<link[^>]*>", self.page), ['<link rel="icon" href="data:,">'])

    def test_content_security_policy(self) -> None:
        """The policy allows exactly the inline script and style, and this server only."""
        policy = self.response.header("Content-Security-Policy")
        assert policy is not None
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        self.assertEqual(directives["default-src"], "'none'")
        self.assertEqual(directives["connect-src"], "'self'")
        script = re.search(r"<script>(.*)</script>", self.page, re.S)
        style = re.search(r"<style>(.*)</style>", self.page, re.S)
        assert script is not None and style is not None

        def sha(text: str) -> str:
            return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

        self.assertEqual(directives["script-src"], sha(script.group(1)))
        self.assertEqual(directives["style-src"], sha(style.group(1)))

    def test_assets_ship_in_package(self) -> None:
        """The page is assembled from files inside the installed package."""
        page = ExplorerPage.from_package()
        self.assertEqual(page.html, self.response.body)
        self.assertNotIn(b"/*SCRIPT*/", page.html)
        self.assertNotIn(b"/*STYLE*/", page.html)
