"""
Fuzzing every route with malformed and hostile requests: the server must
answer each with a client error or a success, never a server error (5xx)
nor a logged traceback, and must always finish its answer.

The requests go through L{StubTreq}, over the server's own site, to the real root resource of
L{tests.helpers.Server} (the real orchestration on a fake process
reactor): no sockets, no real children, deterministic.  Every child the
server spawns is played at once by the fake CLIs of
L{clinvk.testing.fake_cli}, run in this process on the argv and stdin the
server gave it (their C{#fake} directives defused), so runs finish and
give back their admission slots.  The fake reactor refuses, as the real
one does, an argv or environment holding a NUL.

The routes come from the server's own C{/openapi.json}: request bodies
are built from its component schemas, valid values mixed with hostile
ones (Hypothesis), and every string member of a valid request is in turn
replaced with each of a few poisons (systematically).  Paths near the
real ones (meta routes included) and random paths, methods, query
strings and session ids complete it.  Hypothesis runs derandomized,
without an example database, so that every run tries the same inputs;
failures describe the request and the answer in full, since trial does
not show Hypothesis' notes.
"""

from __future__ import annotations

import io
import json
import os
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import Any
from urllib.parse import quote

from attrs import Factory, define
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import treq
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from clinvk.testing import fake_cli
from clinvk.testing.reactor import FakeProcessReactor, FakeProcessTransport
from tests.helpers import BASE, Server, stub_over_site

# Derandomized and without a database: CI tries the same inputs every run.
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Rounds of delivering, playing children and advancing the fake clock
# that a request may take to be answered completely.
ROUNDS = 40

# The session ids the server is seeded with (see FuzzTestCase.setUp).
SEED_PROMPTS = ("seed one", "seed two")


# -- playing the children


def play(transport: FakeProcessTransport) -> int:
    """
    Run the fake CLI named by C{transport}'s argv in this process, on the
    stdin the server wrote, and give its output and exit status to the
    server.  C{#fake} directives in the prompt are defused: a fuzzed
    prompt must not make the fake sleep, fork or hang.

    @return: The exit status.
    """
    name = os.path.basename(transport.argv[0])
    stdin = transport.stdin.decode("utf-8", "replace").replace("#fake", "#f_ke")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = fake_cli.COMMANDS[name](transport.argv[1:], stdin)
        except fake_cli.Usage as e:
            err.write(f"error: {e}\n")
            code = 2
    transport.emit_stdout(out.getvalue().encode("utf-8", "surrogateescape"))
    transport.emit_stderr(err.getvalue().encode("utf-8", "surrogateescape"))
    transport.exit(code)
    return code


class StrictProcessReactor(FakeProcessReactor):
    """
    A fake process reactor that refuses what the real one refuses: Twisted's
    C{spawnProcess} raises C{ValueError("embedded null byte")} for a NUL in
    an argument or in the environment.
    """

    def spawnProcess(  # type: ignore[override] # the keywords are passed on
        self,
        processProtocol: Any,
        executable: bytes | str,
        args: Sequence[bytes | str] = (),
        env: Mapping[Any, Any] | None = None,
        path: bytes | str | None = None,
        **options: Any,
    ) -> FakeProcessTransport:
        values = [executable, *args, *(env or {}).keys(), *(env or {}).values()]
        if any(("\0" if isinstance(value, str) else b"\0") in value for value in values):
            raise ValueError("embedded null byte")
        return super().spawnProcess(processProtocol, executable, args, env, path, **options)


# -- strategies

# Strings the server gives meaning to, to get past the first checks.
GOOD_STRINGS: dict[str, list[str]] = {
    "backend": ["claude", "codex", "gemini", "gpt", ""],
    "model": ["claude", "codex", "gemini", "fast", "best", "gpt-4o", "claude-sonnet-4-5", "o3", ""],
    "output_format": ["stream-json", "json", "text", "default", " JSON ", "xml"],
    "approval_mode": ["default", "auto", "none", "always"],
    "sandbox_mode": ["default", "read-only", "workspace", "full"],
    "workdir": ["/tmp", "/", "/etc", "relative/dir", "/nonexistent/dir", "/tmp/../etc", "/proc/self"],
    "role": ["user", "assistant", "system", "developer", "tool"],
    "type": ["text", "image", "tool_use", "tool_result"],
    "session_id": ["", "00000000", "0123456789abcdef"],
    "prompt": ["hi", "{{previous}}", "{{session}}", "-x", "--help"],
    "content": ["hi", "Hello", "-x", "{{previous}}"],
    "text": ["hi", "Hello", ""],
}

# Strings that broke servers before: NUL (no CLI argument can hold it),
# lone surrogates, option look-alikes, shell and template syntax, paths
# out, control and bidi characters, sheer length.
NASTY_STRINGS = [
    "\0",
    "a\0b",
    "\ud800",
    "\udfff\ud800",
    "-",
    "--",
    "--help",
    "-c",
    " ",
    "\n",
    "\r\n",
    "$(id)",
    "`id`",
    "'",
    '"',
    "\\",
    "%s%n",
    "{{previous}}",
    "{{session}}",
    "../../../../etc/passwd",
    "\u202e",
    "\ufeff",
    "\x1b[2J",
    "x" * 10_000,
]

HUGE_INTEGERS = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**100, -(10**100), 10**4000])

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    HUGE_INTEGERS,
    st.floats(),
    st.text(),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8),
)

hostile_json = st.recursive(
    hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def sometimes_hostile(
    valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any] = hostile_json, odds: int = 20
) -> st.SearchStrategy[Any]:
    """
    C{valid}, but once in C{odds} C{hostile}: rarely enough that most
    requests get past validation and run, often enough that every member
    is tried with every kind of value.
    """
    return st.integers(1, odds).flatmap(lambda dice: hostile if dice == odds else valid)


# Content parts of OpenAI and Anthropic messages.
content_parts = st.fixed_dictionaries(
    {
        "type": sometimes_hostile(
            st.just("text"),
            st.sampled_from(["input_text", "image_url", "image", "tool_use", "tool_result"]),
            4,
        ),
        "text": sometimes_hostile(st.sampled_from(["hi", "Hello"]), st.text(max_size=20), 4),
    },
    optional={"cache_control": st.just({"type": "ephemeral"})},
)

# Members that requests need to get anywhere; drawn whenever a schema
# has them, and (for arrays) never empty.
ESSENTIAL = {
    "backend",
    "prompt",
    "tasks",
    "steps",
    "backends",
    "model",
    "messages",
    "role",
    "content",
    "max_tokens",
}


class SchemaStrategies:
    """
    Hypothesis strategies for the component schemas of an OpenAPI
    document: mostly valid values, with hostile ones mixed in at every
    level (see L{sometimes_hostile}).
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self._components: dict[str, Any] = document.get("components", {}).get("schemas", {})

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 20:
            schema = self._components[schema["$ref"].rsplit("/", 1)[-1]]
            seen += 1
        return schema

    def value(self, schema: Any, name: str, depth: int) -> st.SearchStrategy[Any]:
        """A value for C{schema}, the schema of property C{name} (C{""} for none)."""
        if not isinstance(schema, dict):
            return hostile_json
        schema = self._resolve(schema)
        choices: list[st.SearchStrategy[Any]] = []
        if "const" in schema:
            choices.append(st.just(schema["const"]))
        if "enum" in schema:
            choices.append(st.sampled_from(schema["enum"]))
        for option in ("oneOf", "anyOf"):
            if isinstance(schema.get(option), list):
                choices += [self.value(sub, name, depth + 1) for sub in schema[option]]
        types = schema.get("type", [])
        types = types if isinstance(types, list) else [types]
        choices += [self._typed(kind, schema, name, depth) for kind in types if kind != "null"]
        examples = schema.get("examples")
        if isinstance(examples, list) and examples:
            choices.append(st.sampled_from(examples))
        if not choices:
            return hostile_json
        valid = st.one_of(*choices)
        if "null" in types:
            # Only now and then: null mostly means "absent".
            valid = sometimes_hostile(valid, st.none(), odds=5)
        return sometimes_hostile(valid)

    def _typed(self, kind: str, schema: dict[str, Any], name: str, depth: int) -> st.SearchStrategy[Any]:
        if kind == "string":
            good = GOOD_STRINGS.get(name)
            text = st.text(max_size=40)
            if good is not None:
                text = sometimes_hostile(st.sampled_from(good), text, odds=4)
            return sometimes_hostile(text, st.sampled_from(NASTY_STRINGS), odds=6)
        if kind == "integer":
            integers = st.integers(-3, 5) | st.integers() | HUGE_INTEGERS
            if name == "max_tokens":
                # Anthropic requires it, and positive.
                return sometimes_hostile(st.integers(1, 4096), integers, odds=4)
            return integers
        if kind == "number":
            return st.floats(-2, 2) | st.floats() | HUGE_INTEGERS
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if depth > 4:
            return hostile_json
        if kind == "array":
            items = self._resolve(schema.get("items") or {})
            if name == "backends" and not items:
                items = {"type": "string"}
            if name in ("content", "system") and not items.get("properties"):
                # Content parts: text parts mostly.
                return st.lists(
                    sometimes_hostile(content_parts, self.value(items, "", depth + 1)), max_size=3
                )
            return st.lists(self.value(items, name, depth + 1), min_size=name in ESSENTIAL, max_size=3)
        if kind == "object":
            return self._object(schema, depth)
        return hostile_json

    def _object(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
        properties = schema.get("properties", {})
        if not properties:
            return st.dictionaries(st.text(max_size=10), hostile_json, max_size=3)
        needed = set(schema.get("required", ())) | ESSENTIAL
        members = {key: self.value(sub, key, depth + 1) for key, sub in properties.items()}
        base = st.fixed_dictionaries(
            {key: value for key, value in members.items() if key in needed},
            optional={key: value for key, value in members.items() if key not in needed},
        )
        # Now and then unknown members, or known ones spelled in another case.
        extra_keys = st.sampled_from([key.upper() for key in properties]) | st.text(max_size=10)
        extras = sometimes_hostile(
            st.just({}), st.dictionaries(extra_keys, hostile_json, min_size=1, max_size=2), odds=10
        )
        return st.builds(lambda known, more: {**more, **known}, base, extras)


def nested(depth: int, kind: str) -> str:
    """JSON text nesting C{depth} arrays or objects."""
    if kind == "array":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# Where deep nesting goes: the top, or a member of an otherwise valid
# request (where it reaches the schema validation, not only the parser).
DEEP_PLACES = (
    "@",
    '{"backend":"claude","prompt":"x","dry_run":true,"metadata":@}',
    '{"backend":"claude","prompt":"x","dry_run":true,"extra":@}',
    '{"backend":"claude","prompt":"x","dry_run":true,"unknown":@}',
    '{"tasks":@,"steps":@,"backends":@,"prompt":"x"}',
    '{"model":"claude","max_tokens":5,"messages":@}',
    '{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":@}]}',
)


@st.composite
def deep_bodies(draw: st.DrawFn) -> bytes:
    """A body nesting arrays or objects deeply, at the top or inside a request."""
    depth = draw(st.sampled_from([10, 100, 300, 480, 500, 900, 990, 1000, 2000, 5000, 100_000]))
    kind = draw(st.sampled_from(["array", "object"]))
    place = draw(st.sampled_from(DEEP_PLACES))
    return place.replace("@", nested(depth, kind)).encode()


# Bodies that are not JSON, or JSON only to a lax parser.
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            b'"string"',
            b"1e400",
            b"-1e400",
            b"NaN",
            b"Infinity",
            b'{"prompt": NaN}',
            b'{"backend":"claude","prompt":"x","max_turns":1e400}',
            b'{"backend":"claude","prompt":"x","max_turns":' + b"9" * 5000 + b"}",
            b'{"backend":"claude","prompt":"\\ud800","dry_run":true}',
            b'{"backend":"claude","prompt":"\\udfff\\ud800x","system_prompt":"\\ud83d"}',
            b'{"backend":"claude","prompt":"\xed\xa0\x80"}',
            b'{"backend":"claude","prompt":"\xc0\xaf"}',
            b'\xef\xbb\xbf{"backend":"claude","prompt":"x"}',
            b'{"backend":"claude","prompt":"x"} trailing',
            b'{"backend":"claude","backend":"codex","prompt":"x","dry_run":true}',
            b'{"Backend":"claude","PROMPT":"x","prompt":"y","dry_run":true}',
            b'{"backend":"claude","prompt":"a\\u0000b","model":"m\\u0000","workdir":"/tmp/\\u0000"}',
            b'{"backend":"claude","prompt":"x","workdir":"/tmp/\\u0000x"}',
            b'{"backend":"claude","prompt":"x","model":"a\\u0000b"}',
            b'{"model":"claude","messages":[{"role":"user","content":"a\\u0000b"}]}',
            b'{"model":"a\\u0000b","max_tokens":5,"messages":[{"role":"user","content":"x"}]}',
            b'{"backend":"claude","prompt":"x",}',
            b"{'backend': 'claude'}",
            b"\x00" * 64,
        ]
    ),
    st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
    hostile_json.map(lambda value: json.dumps(value).encode("utf-8", "surrogatepass")),
    deep_bodies(),
)

content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
            "application/merge-patch+json",
            "text/plain",
            "text/html",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/octet-stream",
            "json",
            "",
            ";",
            "+",
            "application/json;;;;",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30),
)

# Header values must be Latin-1 without line breaks to be sent at all.
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)

extra_headers = st.dictionaries(
    st.sampled_from(
        [
            "Accept",
            "Origin",
            "X-Forwarded-For",
            "X-Real-IP",
            "Authorization",
            "X-API-Key",
            "X-Request-ID",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
            "Host",
            "Anthropic-Version",
            "Accept-Encoding",
        ]
    ),
    header_values,
    max_size=3,
)

methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT"]),
    st.text(alphabet=string.ascii_letters, min_size=1, max_size=10),
)


def percent_bytes(data: bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in data)


path_segments = st.one_of(
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "api",
            "v1",
            "prompt",
            "sessions",
            "openai",
            "anthropic",
            "chat",
            "completions",
            "messages",
            "models",
            "health",
            "docs",
            "schemas",
            "metrics",
            "openapi.json",
            "%2F",
            "%00",
            "%FF",
            "%ED%A0%80",
            "%",
            "%zz",
            "x" * 5000,
        ]
    ),
    st.text(max_size=20).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")),
    st.binary(min_size=1, max_size=8).map(percent_bytes),
)

random_paths = st.lists(path_segments, min_size=0, max_size=6).map(lambda segments: "/" + "/".join(segments))

# Paths near the real ones.
KNOWN_PATHS = (
    "/api/v1/prompt",
    "/api/v1/parallel",
    "/api/v1/chain",
    "/api/v1/compare",
    "/api/v1/backends",
    "/api/v1/sessions",
    "/api/v1/sessions/0123abcd",
    "/health",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/openapi.yaml",
    "/openapi-3.0.json",
    "/schemas/PromptRequest.json",
    "/schemas/..%2F..%2Fetc%2Fpasswd",
    "/openai/v1/models",
    "/openai/v1/models/claude",
    "/openai/v1/chat/completions",
    "/openai/v1/responses",
    "/openai/v1/responses/resp_0123456789abcdef01234567",
    "/anthropic/v1/messages",
    "/anthropic/v1/messages/count_tokens",
    "/anthropic/v1/models",
    "/anthropic/v1/models/claude",
)

PATH_CHANGES = (
    lambda path: path + "/",
    lambda path: "/" + path,
    lambda path: path.replace("/", "//", 2),
    lambda path: path.upper(),
    lambda path: path + "/..",
    lambda path: path + "/../..",
    lambda path: path.replace("/", "/./", 1),
    lambda path: path.replace("v1", "v2"),
    lambda path: path.replace("a", "%61"),
    lambda path: path[:1] + path[1:].replace("/", "%2F"),
    lambda path: path + "%00",
    lambda path: path + ";x=1",
    lambda path: path + "#fragment",
    lambda path: path + "/" + "x" * 3000,
)


@st.composite
def near_paths(draw: st.DrawFn) -> str:
    """A real path, changed a little (or not at all)."""
    path = draw(st.sampled_from(KNOWN_PATHS))
    for change in draw(st.lists(st.sampled_from(PATH_CHANGES), max_size=2)):
        path = change(path)
    return path


query_keys = st.one_of(
    st.sampled_from(["backend", "status", "limit", "offset", "LIMIT", "", "limit[]"]),
    st.text(max_size=8).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")),
)

query_values = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "+5",
            " 5",
            "5 ",
            "0x10",
            "1e3",
            "1_000",
            "\uff15",
            "9" * 30,
            "9" * 5000,
            "-" + "9" * 30,
            "claude",
            "completed",
            "active",
            "%00",
            "%FF",
            "%ED%A0%80",
        ]
    ),
    st.integers().map(str),
    st.text(max_size=12).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")),
)

query_strings = st.lists(st.tuples(query_keys, query_values), max_size=5).map(
    lambda pairs: "&".join(f"{key}={value}" for key, value in pairs)
)

session_ids = st.one_of(
    st.sampled_from(["", "0", "00000000", "0" * 32, "f" * 32, "ABCDEF12", "g" * 8, "0" * 1000, "..", "%2F"]),
    st.text(alphabet="0123456789abcdef", max_size=40),
    st.text(max_size=20).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")),
)


# -- the tests

JSON = {"Content-Type": "application/json"}

# The keys of an OpenAPI path item that are operations.
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


@define
class Exchange:
    """One request and what came of it."""

    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    code: int | None = None
    response_headers: dict[bytes, list[bytes]] = Factory(dict)
    chunks: list[bytes] = Factory(list)
    failed_children: int = 0
    problem: str | None = None
    logged: list[str] = Factory(list)

    @property
    def body_received(self) -> bytes:
        return b"".join(self.chunks)

    def describe(self) -> str:
        """The request and the answer, for a failure message (long bodies cut)."""
        body = self.body
        if body is not None and len(body) > 400:
            shown = f"{body[:200]!r} ... {body[-100:]!r} ({len(body)} bytes)"
        else:
            shown = repr(body)
        return (
            f"\n{self.method} {self.path}\nheaders: {self.headers!r}\nbody: {shown}\n"
            f"-> {self.code} {self.response_headers!r}\n{self.body_received[:2000]!r}\n"
            f"problem: {self.problem}\nlogged errors: {self.logged}"
        )


class FuzzTestCase(SynchronousTestCase):
    """
    One server per test method, reused by all of its examples (building
    one takes a tenth of a second).  Each example sends one request and
    plays the children it starts until the answer is complete.
    """

    def setUp(self) -> None:
        # The fakes read directives from the environment too.
        environ = {key: value for key, value in os.environ.items() if not key.startswith("CLINVK_FAKE")}
        self.patch(os, "environ", environ)
        self.server = Server(reactor=StrictProcessReactor())
        self.reactor = self.server.reactor
        self.reactor.advance(1_750_000_000)
        self.stub: Any = stub_over_site(self.server.root)
        document = self.exchange("GET", "/openapi.json")
        self.assertEqual(document.code, 200, document.describe())
        self.document: dict[str, Any] = json.loads(document.body_received)
        self.schemas = SchemaStrategies(self.document)
        # Sessions to find, continue and delete.
        self.session_ids: list[str] = []
        for prompt in SEED_PROMPTS:
            body = json.dumps({"backend": "claude", "prompt": prompt}).encode()
            seeded = self.exchange("POST", "/api/v1/prompt", body, JSON)
            self.assertEqual(seeded.code, 200, seeded.describe())
            self.session_ids.append(json.loads(seeded.body_received)["session_id"])

    def routes(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every documented C{(method, path template, operation)}."""
        return [
            (method.upper(), path, operation)
            for path, operations in self.document["paths"].items()
            for method, operation in operations.items()
            if method.upper() in HTTP_METHODS
        ]

    def exchange(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Exchange:
        """Send one request, play every child it starts, and collect the complete answer."""
        exchange = Exchange(method, path, body, headers or {})
        answer: list[Any] = []
        ended: list[bool] = []
        self.stub.request(method, BASE + path, data=body, headers=exchange.headers).addBoth(answer.append)
        played: set[int] = set()
        for _ in range(ROUNDS):
            self.stub.flush()
            for transport in self.reactor.spawned:
                if id(transport) not in played and transport.stdin_closed and not transport.exited:
                    played.add(id(transport))
                    exchange.failed_children += play(transport) != 0
            self.stub.flush()
            if answer and isinstance(answer[-1], Failure):
                # The connection was lost before the answer was complete.
                exchange.problem = f"no (complete) answer: {answer[-1].getErrorMessage()}"
                break
            if answer and exchange.code is None:
                response = answer[0]
                exchange.code = response.code
                exchange.response_headers = dict(response.headers.getAllRawHeaders())
                collected = treq.collect(response, exchange.chunks.append)
                collected.addCallbacks(lambda _: ended.append(True), answer.append)
            if ended:
                break
            self.reactor.advance(0.25)
        else:
            exchange.problem = f"no complete answer after {ROUNDS} rounds"
        exchange.logged = [error.getErrorMessage() or repr(error.value) for error in self.flushLoggedErrors()]
        return exchange

    def check(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> int:
        """
        Send a request as L{exchange}; fail, describing the request and the
        answer in full, when L{wrong} finds something wrong with it.

        @return: The status of the answer.
        """
        exchange = self.exchange(method, path, body, headers)
        wrong = self.wrong(exchange)
        if wrong is not None:
            self.fail(f"{wrong}:{exchange.describe()}")
        assert exchange.code is not None
        return exchange.code

    def wrong(self, exchange: Exchange) -> str | None:
        """
        What is wrong with an exchange, if anything: no complete answer, an
        error logged by the server, a server error (5xx), an error without
        a body.  The only server error allowed, a 502 from a compatibility
        route when a CLI exited non-zero, is documented
        (docs/design/decisions.md#d2-sdk-error-dialects).
        """
        if exchange.problem is not None:
            return exchange.problem
        if exchange.logged:
            return f"the server logged errors: {exchange.logged}"
        code = exchange.code
        assert code is not None
        if code == 502 and exchange.failed_children and not exchange.path.startswith("/api/"):
            return None
        if code >= 500:
            return f"server error {code} {exchange.body_received[:300]!r}"
        if exchange.method != "HEAD" and code >= 400 and code != 405 and not exchange.body_received:
            # Every error has a body in the dialect of its family (but a
            # native or meta 405, empty as docs/design/native-api.md#native-routing says).
            return f"error {code} without a body"
        return None

    def concrete(self, path: str, session_id: str) -> str:
        return re.sub(r"\{[^}]+\}", session_id, path)


# The documented routes that take a JSON body, each fuzzed by its own test
# (DocumentedRouteTests.test_every_route keeps the list complete).
BODY_ROUTES = (
    "/api/v1/prompt",
    "/api/v1/parallel",
    "/api/v1/chain",
    "/api/v1/compare",
    "/openai/v1/chat/completions",
    "/openai/v1/responses",
    "/anthropic/v1/messages",
    "/anthropic/v1/messages/count_tokens",
)


class DocumentedRouteTests(FuzzTestCase):
    """Every route of C{/openapi.json}, with bodies built from its schemas."""

    def test_every_route(self) -> None:
        """The routes with a body are those of L{BODY_ROUTES}, all C{POST}."""
        with_body = [
            (method, path) for method, path, operation in self.routes() if "requestBody" in operation
        ]
        self.assertEqual(sorted(with_body), sorted(("POST", path) for path in BODY_ROUTES))

    def body_strategy(self, path: str) -> st.SearchStrategy[Any]:
        """
        The bodies of C{path}, from its request schema: built on the first
        example and kept for the others (building and validating the
        strategy anew for every example took a fifth of the test's time).
        """
        bodies: dict[str, st.SearchStrategy[Any]] = self.__dict__.setdefault("_bodies", {})
        if path not in bodies:
            [operation] = [operation for method, template, operation in self.routes() if template == path]
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            bodies[path] = self.schemas.value(schema, "", 0)
        return bodies[path]

    def fuzz_body(self, data: st.DataObject, path: str) -> None:
        """POST to C{path} a mostly valid body built from its request schema."""
        value = data.draw(self.body_strategy(path), label="body")
        body = json.dumps(value).encode("utf-8", "surrogatepass")
        headers = {"Content-Type": "application/json", **data.draw(extra_headers, label="headers")}
        self.check("POST", path, body, headers)

    @FUZZ
    @given(data=st.data())
    def test_prompt(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/api/v1/prompt")

    @FUZZ
    @given(data=st.data())
    def test_parallel(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/api/v1/parallel")

    @FUZZ
    @given(data=st.data())
    def test_chain(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/api/v1/chain")

    @FUZZ
    @given(data=st.data())
    def test_compare(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/api/v1/compare")

    @FUZZ
    @given(data=st.data())
    def test_openai_chat(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/openai/v1/chat/completions")

    @FUZZ
    @given(data=st.data())
    def test_openai_responses(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/openai/v1/responses")

    @FUZZ
    @given(data=st.data())
    def test_anthropic_messages(self, data: st.DataObject) -> None:
        self.fuzz_body(data, "/anthropic/v1/messages")

    @FUZZ
    @given(data=st.data())
    def test_raw_bodies(self, data: st.DataObject) -> None:
        """
        Bodies that are not (valid) JSON, nest deeply or hold what no CLI
        can take (NUL, lone surrogates), under any content type, with any
        of a few methods, to every documented route.
        """
        method, template, _ = data.draw(st.sampled_from(self.routes()), label="route")
        method = data.draw(st.just(method) | st.sampled_from(["POST", "PUT", "DELETE"]), label="method")
        session_id = data.draw(st.sampled_from(self.session_ids) | session_ids, label="id")
        body = data.draw(raw_bodies, label="body")
        json_type = st.sampled_from(["application/json", "application/json; charset=utf-8"])
        content_type = data.draw(sometimes_hostile(json_type, content_types, odds=3), label="type")
        headers = {"Content-Type": content_type, **data.draw(extra_headers, label="headers")}
        self.check(method, self.concrete(template, session_id), body, headers)


# A valid request for each route with a body, with every member set: the
# starting point of L{PoisonedMemberTests}.
VALID_BODIES: dict[str, list[dict[str, Any]]] = {
    "/api/v1/prompt": [
        {
            "backend": "claude",
            "prompt": "hi",
            "model": "fast",
            "workdir": "/tmp",
            "approval_mode": "auto",
            "sandbox_mode": "read-only",
            "output_format": "json",
            "max_tokens": 100,
            "max_turns": 2,
            "system_prompt": "be brief",
            "verbose": True,
            "ephemeral": False,
            "extra": ["--model", "x"],
            "metadata": {"key": "value"},
        },
        {
            "backend": "gemini",
            "prompt": "hi",
            "output_format": "stream-json",
            "model": "best",
            "ephemeral": True,
        },
    ],
    "/api/v1/parallel": [
        {
            "tasks": [
                {
                    "backend": "claude",
                    "prompt": "one",
                    "model": "fast",
                    "system_prompt": "s",
                    "workdir": "/tmp",
                },
                {"backend": "codex", "prompt": "two", "extra": ["-m", "o3"], "sandbox_mode": "workspace"},
            ],
            "max_parallel": 2,
            "fail_fast": True,
        }
    ],
    "/api/v1/chain": [
        {
            "steps": [
                {
                    "backend": "gemini",
                    "prompt": "one",
                    "name": "first",
                    "model": "fast",
                    "approval_mode": "auto",
                },
                {"backend": "claude", "prompt": "two {{previous}}", "system_prompt": "s", "workdir": "/tmp"},
            ],
            "stop_on_failure": True,
            "pass_working_dir": True,
        }
    ],
    "/api/v1/compare": [
        {"backends": ["claude", "codex", "gemini"], "prompt": "hi", "model": "fast", "workdir": "/tmp"}
    ],
    "/openai/v1/chat/completions": [
        {
            "model": "claude",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "again"},
            ],
            "max_tokens": 10,
            "temperature": 0.5,
            "stop": ["x"],
            "user": "someone",
        },
        {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ],
    "/anthropic/v1/messages": [
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 10,
            "system": "be brief",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                {"role": "user", "content": [{"type": "text", "text": "again"}]},
            ],
            "stop_sequences": ["x"],
            "metadata": {"user_id": "someone"},
        },
        {
            "model": "codex",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
    ],
    "/openai/v1/responses": [
        {
            "model": "claude",
            "instructions": "be brief",
            "input": [
                {"role": "developer", "content": "no jokes"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
                {"role": "user", "content": "again"},
            ],
            "metadata": {"k": "v"},
            "user": "someone",
            "max_output_tokens": 10,
        },
        {"model": "gpt-4o", "input": "hi", "stream": True, "store": False},
    ],
    "/anthropic/v1/messages/count_tokens": [
        {
            "model": "claude-sonnet-4-5",
            "system": "be brief",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto"},
        },
    ],
}

# What each string member of a valid request is replaced with in turn.
POISONS = ["\0", "a\0b", "\ud800", "", "-", "--help", "x" * 10_000]


def string_members(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths (keys and indexes) of every string in C{value}."""
    if isinstance(value, str):
        return [at]
    if isinstance(value, dict):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    return [path for key, member in items for path in string_members(member, (*at, key))]


def replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    """A deep copy of C{value} with the member at path C{at} set to C{new}."""
    if not at:
        return new
    copy = json.loads(json.dumps(value))
    parent = copy
    for key in at[:-1]:
        parent = parent[key]
    parent[at[-1]] = new
    return copy


class PoisonedMemberTests(FuzzTestCase):
    """
    Systematically, not at random: each string member of a valid request
    to each route, in turn replaced with each of L{POISONS}.
    """

    def test_every_string_member(self) -> None:
        """
        No poisoned member gets a server error; every failure is listed,
        not only the first.
        """
        self.assertEqual(sorted(VALID_BODIES), sorted(BODY_ROUTES))
        failures = []
        tried = 0
        for path, bodies in VALID_BODIES.items():
            for body in bodies:
                valid = self.exchange("POST", path, json.dumps(body).encode(), JSON)
                self.assertEqual(valid.code, 200, valid.describe())
                for at in string_members(body):
                    for poison in POISONS:
                        data = json.dumps(replaced(body, at, poison)).encode()
                        tried += 1
                        wrong = self.wrong(self.exchange("POST", path, data, JSON))
                        if wrong is not None:
                            member = ".".join(map(str, at))
                            failures.append(f"POST {path} {member}={poison[:20]!r} (in {body}): {wrong}")
        if failures:
            self.fail(f"{len(failures)} of {tried} requests failed:\n" + "\n".join(failures))


class PathTests(FuzzTestCase):
    """Random methods and paths, and random query strings for the sessions."""

    @FUZZ
    @given(method=methods, path=near_paths() | random_paths, query=query_strings, body=st.none() | raw_bodies)
    def test_random_paths(self, method: str, path: str, query: str, body: bytes | None) -> None:
        """Any method on any path: an answer, never a server error."""
        self.check(method, path + ("?" + query if query else ""), body)

    @FUZZ
    @given(data=st.data())
    def test_session_queries(self, data: st.DataObject) -> None:
        """C{/api/v1/sessions} with any query, and any id (a seeded one's prefix included)."""
        query = data.draw(query_strings)
        choice = data.draw(st.sampled_from(["list", "get", "delete"]))
        if choice == "list":
            code = self.check("GET", "/api/v1/sessions?" + query)
            self.assertIn(code, (200, 400, 422))
            return
        known = data.draw(st.sampled_from(self.session_ids))
        session_id = data.draw(st.sampled_from([known, known[:8], known[:7], known.upper()]) | session_ids)
        method = "GET" if choice == "get" else "DELETE"
        self.check(method, f"/api/v1/sessions/{session_id}?{query}")
