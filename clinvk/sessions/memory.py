# -*- test-case-name: tests.sessions.test_contract -*-
"""
A session store in memory, with the semantics and errors of the one on
disk: for tests and for embedding clinvk without a home directory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from clinvk.sessions._select import match_prefix, micros, order_key, page
from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.record import (
    SessionNotFound,
    SessionPage,
    SessionRecord,
    StoreError,
    StoreHealth,
    check_session_id,
)


@implementer(ISessionStore)
class MemorySessionStore:
    """
    An L{ISessionStore} keeping its records in a L{dict}.  Every result is
    already available when the method returns.
    """

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

    def create(self, record: SessionRecord) -> Deferred[None]:
        try:
            check_session_id(record.id)
        except SessionNotFound as e:
            return fail(StoreError(str(e)))
        self._records[record.id] = record
        return succeed(None)

    def get(self, session_id: str) -> Deferred[SessionRecord]:
        try:
            return succeed(self._get(session_id))
        except SessionNotFound as e:
            return fail(e)

    def resolve(self, prefix: str) -> Deferred[SessionRecord]:
        try:
            return succeed(self._records[match_prefix(prefix, self._records)])
        except SessionNotFound as e:
            return fail(e)

    def update(
        self, session_id: str, change: Callable[[SessionRecord], SessionRecord]
    ) -> Deferred[SessionRecord]:
        try:
            record = change(self._get(session_id))
            if record.id != session_id:
                raise ValueError("an update must keep the session id")
        except Exception as e:
            return fail(e)
        self._records[session_id] = record
        return succeed(record)

    def list(
        self, *, backend: str = "", status: str = "", limit: int = 0, offset: int = 0
    ) -> Deferred[SessionPage]:
        matches = sorted(
            (
                record
                for record in self._records.values()
                if (not backend or record.backend == backend) and (not status or record.status == status)
            ),
            key=lambda record: order_key(micros(record.last_used), micros(record.created_at), record.id),
        )
        return succeed(SessionPage(len(matches), tuple(page(matches, offset, limit))))

    def delete(self, prefix: str) -> Deferred[str]:
        try:
            session_id = match_prefix(prefix, self._records)
        except SessionNotFound as e:
            return fail(e)
        del self._records[session_id]
        return succeed(session_id)

    def clean(self, older_than: datetime) -> Deferred[int]:
        cutoff = micros(older_than)
        old = [record.id for record in self._records.values() if micros(record.last_used) < cutoff]
        for session_id in old:
            del self._records[session_id]
        return succeed(len(old))

    def health(self) -> Deferred[StoreHealth]:
        return succeed(StoreHealth(available=True, session_count=len(self._records)))

    def _get(self, session_id: str) -> SessionRecord:
        check_session_id(session_id)
        try:
            return self._records[session_id]
        except KeyError:
            raise SessionNotFound(f"session not found: {session_id}") from None
