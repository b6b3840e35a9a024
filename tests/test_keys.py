"""
Tests for L{clinvk.keys}: the key set, and API keys from the environment or
from gopass, read through the (fake) reactor's process API, reloaded every
five minutes.
"""

from __future__ import annotations

from typing import cast

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from clinvk.errors import KeysUnavailable, Unauthorized
from clinvk.keys import GOPASS_TIMEOUT, RELOAD_SECONDS, ApiKeys, KeyLoader, keys_from_environment, parse_keys
from clinvk.testing.reactor import FakeProcessReactor
from clinvk.web.auth import check_api_key
from tests.helpers import started_supervisor


def keyed_request(key: str) -> IRequest:
    """A request presenting C{key} in C{X-Api-Key}."""
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"x-api-key", [key.encode()])
    return cast("IRequest", request)


class ApiKeysTests(SynchronousTestCase):
    """The key set."""

    def test_parse(self) -> None:
        """Keys are comma-separated and trimmed; empty ones are dropped."""
        self.assertEqual(parse_keys(" a ,, b ,\n"), ("a", "b"))
        self.assertEqual(keys_from_environment({"CLINVK_API_KEYS": "k1,k2"}), ("k1", "k2"))
        self.assertEqual(keys_from_environment({}), ())

    def test_accepts(self) -> None:
        """Exactly the keys given are accepted, until they are replaced."""
        keys = ApiKeys(["k1", "k2"])
        self.assertEqual(
            (keys.count, keys.accepts("k2"), keys.accepts("k3"), keys.accepts("")), (2, True, False, False)
        )
        keys.replace(["k3"])
        self.assertEqual((keys.count, keys.accepts("k2"), keys.accepts("k3")), (1, False, True))

    def test_hold(self) -> None:
        """Held keys accept nothing until replaced."""
        keys = ApiKeys(["k1"])
        keys.hold()
        self.assertEqual((keys.held, keys.accepts("k1")), (True, False))
        keys.replace(["k1"])
        self.assertEqual((keys.held, keys.accepts("k1")), (False, True))


class KeyLoaderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.supervisor = started_supervisor(self.reactor)
        self.keys = ApiKeys()
        self.fatal: list[str] = []

    def loader(self, environ: dict[str, str], path: str = "team/clinvk", installed: bool = True) -> KeyLoader:
        return KeyLoader(
            self.keys,
            self.supervisor,
            self.reactor,
            environ,
            path,
            on_fatal=self.fatal.append,
            which=lambda name: "/usr/bin/gopass" if installed else None,
        )

    def check(self, key: str) -> None:
        check_api_key(self.keys, keyed_request(key), "/api/v1/prompt")

    def answer(self, out: bytes, code: int = 0) -> None:
        child = self.reactor.spawned[-1]
        child.emit_stdout(out)
        child.exit(code)

    def test_environment_wins(self) -> None:
        self.loader({"CLINVK_API_KEYS": " a , b ,"}).startService()
        self.assertEqual(self.reactor.spawned, [])
        self.check("b")
        self.assertRaises(Unauthorized, self.check, "c")

    def test_gopass(self) -> None:
        """Requests wait (503) until gopass answered; its first line holds the keys."""
        self.loader({}).startService()
        self.assertRaises(KeysUnavailable, self.check, "k1")
        child = self.reactor.spawned[-1]
        self.assertEqual(child.argv, ["/usr/bin/gopass", "show", "--password", "team/clinvk"])
        self.answer(b"k1,k2\nnotes\n")
        self.check("k2")
        self.reactor.advance(RELOAD_SECONDS)
        self.answer(b"k3\n")
        self.assertRaises(Unauthorized, self.check, "k1")
        self.check("k3")

    def test_failure_is_fatal_at_start(self) -> None:
        self.loader({}).startService()
        self.answer(b"", code=1)
        self.assertEqual(len(self.fatal), 1)
        self.assertIn("exited with status 1", self.fatal[0])
        self.assertRaises(KeysUnavailable, self.check, "x")
        self.flushLoggedErrors()

    def test_timeout_and_missing_gopass(self) -> None:
        self.loader({}).startService()
        self.reactor.advance(GOPASS_TIMEOUT)
        self.assertIn("did not answer", self.fatal[-1])
        self.loader({}, installed=False).startService()
        self.assertEqual(self.fatal[-1], "gopass is not on PATH")
        self.loader({}, path="bad path!").startService()
        self.assertIn("invalid gopass path", self.fatal[-1])

    def test_reload_failure_keeps_keys(self) -> None:
        self.loader({}).startService()
        self.answer(b"k1\n")
        self.reactor.advance(RELOAD_SECONDS)
        self.answer(b"", code=2)
        self.check("k1")
