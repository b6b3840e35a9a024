"""
The hash chain of a chat history (docs/design/conversations.md#lineage-chain)
and the index of where each conversation stands.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from clinvk.compat.conversations import LineageIndex
from clinvk.compat.lineage import entry, extend, history, message_of, point_of, root
from clinvk.sessions import SessionRecord

START = root("claude", "", "be brief")


class RootTests(SynchronousTestCase):
    def test_each_part_counts(self) -> None:
        """Backend, model and system text each make another conversation; spaces at the ends do not."""
        self.assertEqual(len({START, root("codex", "", "be brief"), root("claude", "opus", "be brief")}), 3)
        self.assertNotEqual(START, root("claude", "", "be terse"))
        self.assertEqual(START, root("claude", "", "  be brief\n"))
        self.assertRegex(START, "^[0-9a-f]{32}$")

    def test_parts_do_not_run_together(self) -> None:
        """Length-prefixed: moving text between parts changes the hash."""
        self.assertNotEqual(root("ab", "c", ""), root("a", "bc", ""))
        self.assertNotEqual(extend(START, [("user", "ab")]), extend(START, [("userab", "")]))


class HistoryTests(SynchronousTestCase):
    def test_first_turn(self) -> None:
        """No assistant yet: no point, everything is new input, seeded as flattened."""
        found = history(START, [("user", "a"), ("user", "b")])
        self.assertEqual((found.points, found.prefix), ((), ""))
        self.assertEqual(found.new_input, (("user", "a"), ("user", "b")))
        self.assertEqual((found.prompt, found.seed), ("a\nb", "a\nb"))

    def test_points_after_each_answer(self) -> None:
        messages = [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3")]
        found = history(START, messages)
        self.assertEqual(found.points, (extend(START, messages[:2]), extend(START, messages[:4])))
        self.assertEqual(
            (found.prefix, found.new_input, found.prompt), (found.points[-1], (("user", "q3"),), "q3")
        )
        self.assertEqual(found.seed, "q1\n[Previous response: a1]\n\nq2\n[Previous response: a2]\n\nq3")

    def test_answered_is_the_next_requests_point(self) -> None:
        """The point after an answer is the prefix of the history that carries it on."""
        first = history(START, [("user", "q1")])
        after = first.answered(START, " a1 ")
        second = history(START, [("user", "q1"), ("assistant", "a1"), ("user", "q2")])
        self.assertEqual(second.prefix, after)
        self.assertEqual(
            second.answered(second.prefix, "a2"), extend(after, [("user", "q2"), ("assistant", "a2")])
        )

    def test_edit_changes_every_later_point(self) -> None:
        original = history(START, [("user", "q1"), ("assistant", "a1"), ("user", "q2")])
        edited = history(START, [("user", "q1!"), ("assistant", "a1"), ("user", "q2")])
        self.assertNotEqual(original.prefix, edited.prefix)


def record(session_id: str, lineage: tuple[str, ...], day: int) -> SessionRecord:
    moment = datetime(2026, 1, day, tzinfo=UTC)
    return SessionRecord(
        id=session_id, backend="claude", created_at=moment, last_used=moment, lineage=lineage
    )


class IndexTests(SynchronousTestCase):
    def test_standing_and_passed(self) -> None:
        """Where a session stands is its last point; the most recently used comes first."""
        index = LineageIndex()
        index.load([record("b", ("p1", "p2"), 2), record("a", ("p1", "p2"), 1), record("c", (), 3)])
        self.assertEqual(index.standing_at("p2"), ["b", "a"])
        self.assertEqual(index.standing_at("p1"), [])
        self.assertEqual(index.passed("p1"), "b")
        self.assertEqual(index.passed("p9"), "")

    def test_put_moves_and_drops(self) -> None:
        index = LineageIndex()
        index.put("a", ("p1",))
        index.put("b", ("p1",))
        index.put("a", ("p1", "p2"))
        self.assertEqual((index.standing_at("p1"), index.standing_at("p2")), (["b"], ["a"]))
        index.put("b", ())
        self.assertEqual((index.standing_at("p1"), index.passed("p1")), ([], "a"))

    def test_load_keeps_later_changes(self) -> None:
        """A store read while a turn was recorded does not undo the turn."""
        index = LineageIndex()
        index.put("a", ("p1", "p2"))
        index.load([record("a", ("p1",), 1)])
        self.assertEqual(index.standing_at("p2"), ["a"])


class EntryTests(SynchronousTestCase):
    def test_marked(self) -> None:
        """An entry carries the CLI's message id after C{@}, when there is one."""
        marked, plain = entry(START, "uuid-1"), entry(START)
        self.assertEqual((marked, plain), (f"{START}@uuid-1", START))
        self.assertEqual((point_of(marked), message_of(marked)), (START, "uuid-1"))
        self.assertEqual((point_of(plain), message_of(plain)), (START, ""))

    def test_index_compares_points(self) -> None:
        index = LineageIndex()
        index.put("a", (entry("p1", "m1"), entry("p2", "m2")))
        self.assertEqual((index.standing_at("p2"), index.passed("p1")), (["a"], "a"))
