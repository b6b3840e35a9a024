"""
The behaviour every L{ISessionStore} shares, run against the store in
memory and the store on disk.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import TYPE_CHECKING, Any

from attrs import evolve

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.sessions.disk import DiskSessionStore
from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.memory import MemorySessionStore
from clinvk.sessions.record import (
    COMPLETED,
    ERROR,
    SessionNotFound,
    SessionPage,
    SessionRecord,
    StoreError,
    StoreHealth,
)
from tests.sessions.helpers import EXAMPLE, T0, record, session_id

if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


def _more_turns(current: SessionRecord) -> SessionRecord:
    return evolve(current, turn_count=current.turn_count + 1)


class StoreContractMixin(_TestCase):
    """
    The contract of L{ISessionStore}, mixed into a L{SynchronousTestCase}
    whose L{make_store} says which store.
    """

    def make_store(self) -> ISessionStore:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.make_store()

    def create(self, *records: SessionRecord) -> None:
        for item in records:
            self.assertIsNone(self.successResultOf(self.store.create(item)))

    def assert_not_found(self, result: Deferred[Any], reason: str) -> None:
        failure = self.failureResultOf(result, SessionNotFound)
        self.assertEqual(str(failure.value), reason)

    def page(self, **filters: object) -> SessionPage:
        return self.successResultOf(self.store.list(**filters))  # type: ignore[arg-type]

    def listed(self, **filters: object) -> list[str]:
        return [item.id for item in self.page(**filters).sessions]

    def test_provides(self) -> None:
        """The store provides L{ISessionStore}."""
        self.assertTrue(verifyObject(ISessionStore, self.store))

    # create and get

    def test_create_get(self) -> None:
        """A created record is read back equal by its full id."""
        self.create(EXAMPLE)
        self.assertEqual(self.successResultOf(self.store.get(EXAMPLE.id)), EXAMPLE)

    def test_create_replaces(self) -> None:
        """Creating a record with an existing id replaces it."""
        self.create(record(1), record(1, status=COMPLETED))
        self.assertEqual(self.successResultOf(self.store.get(session_id(1))).status, COMPLETED)
        self.assertEqual(self.page().total, 1)

    def test_create_invalid_id(self) -> None:
        """A record whose id could escape the directory is refused with L{StoreError}."""
        for bad in ("", "../etc", "A" * 32):
            failure = self.failureResultOf(self.store.create(evolve(EXAMPLE, id=bad)), StoreError)
            self.assertTrue(str(failure.value))
        self.assertEqual(self.page().total, 0)

    def test_get_missing(self) -> None:
        """An unknown id is C{session not found: <id>}."""
        self.assert_not_found(self.store.get(session_id(9)), f"session not found: {session_id(9)}")

    def test_get_invalid(self) -> None:
        """Invalid full ids are refused with the reference's messages."""
        self.create(EXAMPLE)
        self.assert_not_found(self.store.get(""), "session ID cannot be empty")
        self.assert_not_found(
            self.store.get("../" + EXAMPLE.id), "invalid session ID: contains path characters"
        )
        self.assert_not_found(self.store.get(EXAMPLE.id.upper()), "invalid session ID format")

    def test_get_by_prefix_is_not_get(self) -> None:
        """L{ISessionStore.get} wants the full id."""
        self.create(EXAMPLE)
        self.assert_not_found(self.store.get(EXAMPLE.id[:8]), f"session not found: {EXAMPLE.id[:8]}")

    # resolve

    def test_resolve(self) -> None:
        """A full id and every unambiguous prefix resolve to the session."""
        self.create(EXAMPLE, record(1))
        for prefix in (EXAMPLE.id, EXAMPLE.id[:12], "7"):
            self.assertEqual(self.successResultOf(self.store.resolve(prefix)), EXAMPLE)

    def test_resolve_none(self) -> None:
        """A prefix matching nothing is C{no session found with prefix: <p>}."""
        self.create(EXAMPLE)
        self.assert_not_found(self.store.resolve("7a42"), "no session found with prefix: 7a42")
        self.assert_not_found(
            self.store.resolve(EXAMPLE.id + "0"), f"no session found with prefix: {EXAMPLE.id}0"
        )

    def test_resolve_ambiguous(self) -> None:
        """A prefix of several ids is C{ambiguous prefix <p>: matches <n> sessions}."""
        self.create(record(1), record(2), record(3), EXAMPLE)
        self.assert_not_found(self.store.resolve("000"), "ambiguous prefix 000: matches 3 sessions")
        self.assertEqual(self.successResultOf(self.store.resolve(session_id(2))).id, session_id(2))

    def test_resolve_invalid(self) -> None:
        """Invalid prefixes are refused before any lookup (docs/design/session-store.md#session-ids)."""
        self.create(EXAMPLE)
        self.assert_not_found(self.store.resolve(""), "session prefix cannot be empty")
        for prefix in ("7a/41", "7a\\41", "..", "7a41.."):
            self.assert_not_found(
                self.store.resolve(prefix), "invalid session prefix: contains path characters"
            )
        for prefix in ("7A41", EXAMPLE.id.upper(), "7a41-c0", "g"):
            self.assert_not_found(
                self.store.resolve(prefix),
                "invalid session prefix: must contain only hex characters (0-9, a-f)",
            )

    # update

    def test_update(self) -> None:
        """An update applies the change to the stored record and returns the new one."""
        self.create(EXAMPLE)
        updated = self.successResultOf(self.store.update(EXAMPLE.id, _more_turns))
        self.assertEqual(updated, evolve(EXAMPLE, turn_count=2))
        self.successResultOf(self.store.update(EXAMPLE.id, _more_turns))
        self.assertEqual(self.successResultOf(self.store.get(EXAMPLE.id)).turn_count, 3)

    def test_update_sees_stored_record(self) -> None:
        """The change gets the record as stored now, not as it was created."""
        self.create(record(1))
        self.successResultOf(self.store.update(session_id(1), lambda r: evolve(r, status=ERROR)))
        seen: list[SessionRecord] = []

        def change(current: SessionRecord) -> SessionRecord:
            seen.append(current)
            return current

        self.successResultOf(self.store.update(session_id(1), change))
        self.assertEqual([item.status for item in seen], [ERROR])

    def test_update_index(self) -> None:
        """Listing filters and order follow an update."""
        self.create(record(1, minutes=1), record(2, minutes=2))
        later = T0 + timedelta(minutes=5)
        self.successResultOf(
            self.store.update(session_id(1), lambda r: evolve(r, status=COMPLETED, last_used=later))
        )
        self.assertEqual(self.listed(), [session_id(1), session_id(2)])
        self.assertEqual(self.listed(status=COMPLETED), [session_id(1)])

    def test_update_missing(self) -> None:
        """Updating an unknown or invalid id fails with L{SessionNotFound}."""
        self.assert_not_found(
            self.store.update(session_id(1), _more_turns), f"session not found: {session_id(1)}"
        )
        self.assert_not_found(
            self.store.update("a/b", _more_turns), "invalid session ID: contains path characters"
        )
        self.assertEqual(self.page().total, 0)

    def test_update_change_fails(self) -> None:
        """When the change raises, the update fails with its error and nothing changes."""
        self.create(EXAMPLE)

        def change(current: SessionRecord) -> SessionRecord:
            raise ZeroDivisionError()

        self.failureResultOf(self.store.update(EXAMPLE.id, change), ZeroDivisionError)
        self.assertEqual(self.successResultOf(self.store.get(EXAMPLE.id)), EXAMPLE)

    def test_update_keeps_id(self) -> None:
        """A change may not change the id."""
        self.create(EXAMPLE)
        self.failureResultOf(self.store.update(EXAMPLE.id, lambda r: evolve(r, id=session_id(1))), ValueError)
        self.assertEqual(self.listed(), [EXAMPLE.id])

    # list

    def test_list_empty(self) -> None:
        """An empty store lists nothing."""
        self.assertEqual(self.page(), SessionPage(total=0, sessions=()))

    def test_list_records(self) -> None:
        """Listings hold the full records."""
        self.create(EXAMPLE)
        self.assertEqual(self.page(), SessionPage(total=1, sessions=(EXAMPLE,)))

    def test_list_order(self) -> None:
        """Most recently used first; ties by most recently created, then by id."""
        self.create(
            record(1, minutes=1),
            record(2, minutes=3),
            record(3, minutes=2, created=0),
            record(4, minutes=2, created=1),
            record(6, minutes=2, created=1),
            record(5, minutes=2, created=1),
        )
        self.assertEqual(
            self.listed(),
            [session_id(2), session_id(4), session_id(5), session_id(6), session_id(3), session_id(1)],
        )

    def test_list_order_across_offsets(self) -> None:
        """The order is by instant, whatever offset the timestamps were given in."""
        plus_two = timezone(timedelta(hours=2))
        self.create(
            evolve(record(1), last_used=(T0 + timedelta(minutes=1)).astimezone(plus_two)),
            record(2, minutes=2),
        )
        self.assertEqual(self.listed(), [session_id(2), session_id(1)])

    def test_list_filters(self) -> None:
        """C{backend} and C{status} filter by exact match; both at once combine."""
        self.create(
            record(1, minutes=1, backend="claude", status=COMPLETED),
            record(2, minutes=2, backend="codex", status=COMPLETED),
            record(3, minutes=3, backend="claude", status=ERROR),
            record(4, minutes=4, backend="gemini"),
        )
        self.assertEqual(self.listed(backend="claude"), [session_id(3), session_id(1)])
        self.assertEqual(self.listed(status=COMPLETED), [session_id(2), session_id(1)])
        self.assertEqual(self.listed(backend="claude", status=COMPLETED), [session_id(1)])
        self.assertEqual(self.page(backend="Claude"), SessionPage(total=0, sessions=()))
        self.assertEqual(self.page(status="paused").total, 0)

    def test_list_paging(self) -> None:
        """C{total} counts matches before paging; offset applies before limit."""
        self.create(*(record(n, minutes=n) for n in range(1, 8)))
        newest_first = [session_id(n) for n in range(7, 0, -1)]
        page = self.page(limit=3)
        self.assertEqual(page.total, 7)
        self.assertEqual([item.id for item in page.sessions], newest_first[:3])
        self.assertEqual(self.listed(offset=2, limit=3), newest_first[2:5])
        self.assertEqual(self.listed(offset=5, limit=3), newest_first[5:])
        self.assertEqual(self.listed(offset=2), newest_first[2:])
        self.assertEqual(self.listed(limit=0), newest_first)
        self.assertEqual(self.listed(limit=-1), newest_first)
        self.assertEqual(self.page(offset=7), SessionPage(total=7, sessions=()))
        self.assertEqual(self.page(offset=100, limit=1), SessionPage(total=7, sessions=()))

    def test_list_paging_filtered(self) -> None:
        """C{total} counts only the matches of the filters."""
        self.create(*(record(n, minutes=n, backend="codex" if n % 2 else "claude") for n in range(1, 8)))
        page = self.page(backend="codex", offset=1, limit=2)
        self.assertEqual(page.total, 4)
        self.assertEqual([item.id for item in page.sessions], [session_id(5), session_id(3)])

    # delete

    def test_delete(self) -> None:
        """Deleting by prefix returns the full id; the session is gone; a second delete finds nothing."""
        self.create(EXAMPLE, record(1))
        self.assertEqual(self.successResultOf(self.store.delete("7a41")), EXAMPLE.id)
        self.assert_not_found(self.store.get(EXAMPLE.id), f"session not found: {EXAMPLE.id}")
        self.assertEqual(self.listed(), [session_id(1)])
        self.assert_not_found(self.store.delete("7a41"), "no session found with prefix: 7a41")
        self.assert_not_found(self.store.delete(EXAMPLE.id), f"no session found with prefix: {EXAMPLE.id}")

    def test_delete_full_id(self) -> None:
        """A full id is a prefix of itself."""
        self.create(EXAMPLE)
        self.assertEqual(self.successResultOf(self.store.delete(EXAMPLE.id)), EXAMPLE.id)
        self.assertEqual(self.page().total, 0)

    def test_delete_ambiguous_or_invalid(self) -> None:
        """Deletion resolves like L{ISessionStore.resolve} and deletes nothing when that fails."""
        self.create(record(1), record(2))
        self.assert_not_found(self.store.delete("0"), "ambiguous prefix 0: matches 2 sessions")
        self.assert_not_found(self.store.delete(""), "session prefix cannot be empty")
        self.assert_not_found(self.store.delete("../0"), "invalid session prefix: contains path characters")
        self.assert_not_found(
            self.store.delete("0A"), "invalid session prefix: must contain only hex characters (0-9, a-f)"
        )
        self.assertEqual(self.page().total, 2)

    # clean

    def test_clean(self) -> None:
        """Sessions last used before the cut-off are deleted and counted; the others stay."""
        self.create(
            record(1, minutes=-10),
            record(2, minutes=-1),
            record(3, minutes=0),
            record(4, minutes=5, created=-100),
        )
        self.assertEqual(self.successResultOf(self.store.clean(T0)), 2)
        self.assertEqual(self.listed(), [session_id(4), session_id(3)])
        self.assertEqual(self.successResultOf(self.store.clean(T0)), 0)

    def test_clean_empty(self) -> None:
        """Cleaning an empty store deletes nothing."""
        self.assertEqual(self.successResultOf(self.store.clean(T0)), 0)

    # health

    def test_health(self) -> None:
        """A working store is available and counts its sessions."""
        self.assertEqual(self.successResultOf(self.store.health()), StoreHealth(True, 0))
        self.create(record(1), record(2))
        self.assertEqual(self.successResultOf(self.store.health()), StoreHealth(True, 2, ""))
        self.successResultOf(self.store.delete(session_id(1)))
        self.assertEqual(self.successResultOf(self.store.health()).session_count, 1)


class MemoryStoreContractTests(StoreContractMixin, SynchronousTestCase):
    """The contract, for L{MemorySessionStore}."""

    def make_store(self) -> ISessionStore:
        return MemorySessionStore()


class DiskStoreContractTests(StoreContractMixin, SynchronousTestCase):
    """The contract, for L{DiskSessionStore} running its work synchronously."""

    def make_store(self) -> ISessionStore:
        return DiskSessionStore(SessionFiles(sessions_directory(self.mktemp())))
