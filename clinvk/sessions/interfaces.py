# -*- test-case-name: tests.sessions.test_contract -*-
# zope.interface methods have no self (the rule is ignored the same way for
# clinvk/interfaces.py in pyproject.toml).
# ruff: noqa: N805
"""
The interface of a session store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from zope.interface import Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from clinvk.sessions.record import SessionPage, SessionRecord, StoreHealth


class ISessionStore(Interface):
    """
    Where session records live (docs/design/session-store.md#session-store).  Every
    method returns a
    L{Deferred}; the failures named below are its failures, never raised
    synchronously.
    """

    def create(record: SessionRecord) -> Deferred[None]:
        """
        Store a new record and its index entry.

        @param record: The record; its C{id} should come from
            L{clinvk.sessions.record.new_session_id}.
        @return: A L{Deferred} firing with L{None} once the record is
            stored, or failing with L{clinvk.sessions.record.StoreError}.
        """

    def get(session_id: str) -> Deferred[SessionRecord]:
        """
        Read a record by its full id.

        @return: A L{Deferred} firing with the
            L{clinvk.sessions.record.SessionRecord}, or failing with
            L{clinvk.sessions.record.SessionNotFound} (invalid id, no such
            session, unreadable or corrupt record).
        """

    def resolve(prefix: str) -> Deferred[SessionRecord]:
        """
        Read the one record whose id starts with C{prefix}
        (docs/design/session-store.md#session-ids; a full id is a prefix of itself).

        @return: A L{Deferred} firing with the
            L{clinvk.sessions.record.SessionRecord}, or failing with
            L{clinvk.sessions.record.SessionNotFound} whose text is the
            reason: an invalid prefix, none or several matches, an index
            entry without a file (C{session not found: <id>}), or an
            unreadable or corrupt record.
        """

    def update(session_id: str, change: Callable[[SessionRecord], SessionRecord]) -> Deferred[SessionRecord]:
        """
        Change one record atomically: read it afresh while holding the
        store's lock, apply C{change}, write the result and its index
        entry.  Concurrent updates, from any process, lose nothing.

        @param session_id: The full id.
        @param change: Computes the new record from the current one; it
            must keep the id.  It may run in another thread.
        @return: A L{Deferred} firing with the new record, or failing with
            L{clinvk.sessions.record.SessionNotFound} when there is no such
            record, L{clinvk.sessions.record.StoreError} when it could not
            be written, or whatever C{change} raised.
        """

    def list(
        *, backend: str = "", status: str = "", limit: int = 0, offset: int = 0
    ) -> Deferred[SessionPage]:
        """
        List sessions (docs/design/session-store.md#session-listing): filtered by exact
        C{backend} and
        C{status} (C{""} matches all), most recently used first, then most
        recently created, then by id.  Records that cannot be read are left
        out of the page but still counted in its C{total}.

        @param limit: At most this many sessions; C{<= 0} for all of them.
        @param offset: How many matching sessions to skip first.
        @return: A L{Deferred} firing with a
            L{clinvk.sessions.record.SessionPage}, or failing with
            L{clinvk.sessions.record.StoreError}.
        """

    def delete(prefix: str) -> Deferred[str]:
        """
        Delete the session C{prefix} resolves to (as L{resolve}): its
        record, its artefact directory and its index entry
        (docs/design/session-store.md#session-deletion).

        @return: A L{Deferred} firing with the full id, or failing with
            L{clinvk.sessions.record.SessionNotFound} (as L{resolve}, or
            C{session not found: <id>} when the record file is missing) or
            L{clinvk.sessions.record.StoreError}.
        """

    def clean(older_than: datetime) -> Deferred[int]:
        """
        Retention (docs/design/session-store.md#retention): delete every session last
        used before C{older_than}.

        @param older_than: A timezone-aware cut-off.
        @return: A L{Deferred} firing with the number of sessions deleted,
            or failing with L{clinvk.sessions.record.StoreError}.
        """

    def health() -> Deferred[StoreHealth]:
        """
        Whether the store works and how many sessions it holds
        (docs/design/session-store.md#store-health).

        @return: A L{Deferred} firing with a
            L{clinvk.sessions.record.StoreHealth}; it does not fail.
        """
