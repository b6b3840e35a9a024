"""
Tests that the fakes in L{clinvk.testing} behave like what they stand for.
"""

from __future__ import annotations

import signal

from twisted.internet.interfaces import IProcessTransport, IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.testing.fake_cli import parse_directives, schema_instance
from clinvk.testing.reactor import FakeProcessReactor


class FakeProcessReactorTests(SynchronousTestCase):
    """The fake process reactor and transport."""

    def setUp(self) -> None:
        self.reactor = FakeProcessReactor()
        self.protocol = ProcessProtocol()
        self.transport = self.reactor.spawnProcess(
            self.protocol, "/bin/x", ["/bin/x", "a"], env={"A": "1"}, path="/tmp"
        )

    def test_interfaces(self) -> None:
        """They provide IReactorProcess and IProcessTransport."""
        verifyObject(IReactorProcess, self.reactor)
        verifyObject(IProcessTransport, self.transport)

    def test_records(self) -> None:
        """Spawns and stdin are recorded."""
        self.transport.write(b"in")
        self.transport.closeStdin()
        self.assertEqual(
            (self.transport.argv, self.transport.env, self.transport.path),
            (["/bin/x", "a"], {"A": "1"}, "/tmp"),
        )
        self.assertEqual((self.transport.stdin, self.transport.stdin_closed), (b"in", True))
        self.assertRaises(RuntimeError, self.transport.write, b"late")

    def test_signals(self) -> None:
        """TERM kills by default; KILL always; a dead group reports False."""
        pid = self.transport.pid or 0
        self.assertTrue(self.reactor.signal_group(pid, signal.SIGTERM))
        self.assertTrue(self.transport.ended)
        self.assertFalse(self.reactor.signal_group(pid, signal.SIGKILL))
        self.assertFalse(self.reactor.signal_group(99999, signal.SIGTERM))

    def test_signal_zero(self) -> None:
        """Signal 0 tells whether the group exists and changes nothing."""
        pid = self.transport.pid or 0
        self.assertTrue(self.reactor.signal_group(pid, 0))
        self.assertFalse(self.transport.exited)
        self.transport.exit(0)
        self.assertFalse(self.reactor.signal_group(pid, 0))

    def test_straggler(self) -> None:
        """A straggler keeps the group alive, not the pipes open, after the child exits; KILL ends it."""
        pid = self.transport.pid or 0
        self.transport.straggler = True
        self.transport.exit(0)
        self.assertTrue(self.transport.ended)
        self.assertTrue(self.reactor.signal_group(pid, signal.SIGTERM))
        self.assertTrue(self.reactor.signal_group(pid, 0))
        self.assertTrue(self.reactor.signal_group(pid, signal.SIGKILL))
        self.assertFalse(self.reactor.signal_group(pid, 0))

    def test_delayed_term(self) -> None:
        """A child may take some seconds to obey TERM."""
        self.transport.on_term = 2.0
        self.transport.signalProcess("TERM")
        self.reactor.advance(1.9)
        self.assertFalse(self.transport.exited)
        self.reactor.advance(0.1)
        self.assertTrue(self.transport.ended)


class DirectiveTests(SynchronousTestCase):
    """The fake CLIs' directives."""

    def test_parse(self) -> None:
        """#fake lines give key=value pairs (bare keys are "1"); #fake-answer a verbatim answer."""
        directives, answer = parse_directives(
            "#fake delay=0.5 hang\nreal prompt\n#fake-answer two words", "#fake exit=3"
        )
        self.assertEqual(directives, {"delay": "0.5", "hang": "1", "exit": "3"})
        self.assertEqual(answer, "two words")


class SchemaInstanceTests(SynchronousTestCase):
    """What a fake held to a schema answers (L{schema_instance})."""

    def test_shapes(self) -> None:
        """Required properties only, typed; const and enum first; arrays at their minimum."""
        schema = {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer"},
                "ratio": {"type": ["number", "null"]},
                "kind": {"enum": ["a", "b"]},
                "fixed": {"const": 3},
                "tags": {"type": "array", "items": {"type": "boolean"}, "minItems": 2},
                "nested": {
                    "properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
                    "required": ["x"],
                },
                "optional": {"type": "string"},
            },
            "required": ["name", "count", "ratio", "kind", "fixed", "tags", "nested"],
        }
        self.assertEqual(
            schema_instance(schema, "hi"),
            {
                "name": "hi",
                "count": 1,
                "ratio": 1.5,
                "kind": "a",
                "fixed": 3,
                "tags": [True, True],
                "nested": {"x": 1},
            },
        )
