"""
Tests for L{clinvk.keys}: the key set, and API keys from the environment or
from gopass, read through the (fake) reactor's process API, reloaded every
five minutes.
"""

from __future__ import annotations

import signal
from typing import cast

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from clinvk.errors import KeysUnavailable, Unauthorized
from clinvk.keys import GOPASS_TIMEOUT, RELOAD_SECONDS, ApiKeys, KeyLoader, keys_from_environment, parse_keys
from clinvk.testing.reactor import FakeProcessReactor, FakeProcessTransport
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


class KeyLoaderOwnershipTests(SynchronousTestCase):
    """
    The loader owns its work: stopping it ends the load in progress and
    the reloads, starts nothing, and is never reported as a failure.
    """

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.supervisor = started_supervisor(self.reactor)
        self.keys = ApiKeys()
        self.fatal: list[str] = []
        self.events = EventLoggingObserver.createWithCleanup(cast("TestCase", self), globalLogPublisher)

    def started(self) -> KeyLoader:
        loader = KeyLoader(
            self.keys,
            self.supervisor,
            self.reactor,
            {},
            "team/clinvk",
            on_fatal=self.fatal.append,
            which=lambda name: "/usr/bin/gopass",
        )
        loader.startService()
        return loader

    def gopass_runs(self) -> list[FakeProcessTransport]:
        return [t for t in self.reactor.spawned if t.argv[:1] == ["/usr/bin/gopass"]]

    def assert_quiet(self) -> None:
        """Nothing was fatal, and nothing logged above info."""
        self.assertEqual(self.fatal, [])
        loud = [formatEvent(e) for e in self.events if e["log_level"] > LogLevel.info]
        self.assertEqual(loud, [])

    def assert_no_reloads(self) -> None:
        """No reload is due, now or ever: no more gopass runs, however long the wait."""
        runs = len(self.gopass_runs())
        self.reactor.advance(RELOAD_SECONDS * 3)
        self.assertEqual(len(self.gopass_runs()), runs)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_stopped_before_first_answer(self) -> None:
        """
        Stopped before gopass answers: gopass is stopped, the stop is
        done, no reload loop starts (even when gopass answers after all),
        and nothing is reported as a failure.
        """
        loader = self.started()
        [gopass] = self.gopass_runs()
        self.successResultOf(loader.stopService())
        self.assertIn((gopass.pid, signal.SIGTERM), self.reactor.signals)
        self.assertTrue(gopass.ended)
        self.assertTrue(self.keys.held)
        self.assert_no_reloads()
        self.assert_quiet()

    def test_late_answer_after_stop(self) -> None:
        """
        gopass answering after the stop (it ignored the TERM) changes
        nothing: the keys stay held and no reload starts.
        """
        loader = self.started()
        [gopass] = self.gopass_runs()
        gopass.on_term = "ignore"
        self.successResultOf(loader.stopService())
        gopass.emit_stdout(b"k1\n")
        gopass.exit(0)
        self.assertTrue(self.keys.held)
        self.assert_no_reloads()
        self.assert_quiet()

    def test_stopped_with_the_supervisor(self) -> None:
        """
        Stopped during the first load, in the tree's order (the loader,
        then the supervisor): both stops are clean and nothing is fatal,
        so the server would exit 0.
        """
        loader = self.started()
        self.successResultOf(loader.stopService())
        self.successResultOf(self.supervisor.stopService())
        self.assert_no_reloads()
        self.assert_quiet()

    def test_supervisor_stops_first(self) -> None:
        """
        The supervisor stopping first ends gopass with the server: that is
        the shutdown, not a failure to load the keys.
        """
        loader = self.started()
        self.successResultOf(self.supervisor.stopService())
        self.assertEqual(self.fatal, [])
        self.successResultOf(loader.stopService())
        self.assert_no_reloads()
        self.assert_quiet()

    def test_refused_by_a_stopping_supervisor(self) -> None:
        """A supervisor that already refuses work is no failure either."""
        self.successResultOf(self.supervisor.stopService())
        loader = self.started()
        self.assertEqual(self.gopass_runs(), [])
        self.successResultOf(loader.stopService())
        self.assert_quiet()

    def test_stopped_during_a_reload(self) -> None:
        """
        Stopped while a reload runs: that gopass is stopped, the keys
        loaded before stay, and no further reload is scheduled.
        """
        loader = self.started()
        first = self.gopass_runs()[-1]
        first.emit_stdout(b"k1\n")
        first.exit(0)
        self.reactor.advance(RELOAD_SECONDS)
        [_, reload] = self.gopass_runs()
        self.successResultOf(loader.stopService())
        self.assertTrue(reload.ended)
        self.assertEqual((self.keys.held, self.keys.accepts("k1")), (False, True))
        self.assert_no_reloads()
        self.assert_quiet()

    def test_stopped_between_reloads(self) -> None:
        """Stopped while waiting for the next reload: the timer goes with it."""
        loader = self.started()
        first = self.gopass_runs()[-1]
        first.emit_stdout(b"k1\n")
        first.exit(0)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.successResultOf(loader.stopService())
        self.assert_no_reloads()
        self.assert_quiet()

    def test_restart(self) -> None:
        """A stopped loader can be started again, and loads again."""
        loader = self.started()
        self.successResultOf(loader.stopService())
        loader.startService()
        gopass = self.gopass_runs()[-1]
        self.assertFalse(gopass.ended)
        gopass.emit_stdout(b"k2\n")
        gopass.exit(0)
        self.assertTrue(self.keys.accepts("k2"))
        self.successResultOf(loader.stopService())
        self.assert_quiet()
