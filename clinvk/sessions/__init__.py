# -*- test-case-name: tests.sessions -*-
"""
Sessions: the persistent records of executions, stored in the directory
the command-line tool uses (docs/design/session-store.md#session-store).
"""

from __future__ import annotations

from clinvk.sessions.blocking import RunBlocking, in_thread_pool
from clinvk.sessions.disk import DiskSessionStore
from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.interfaces import ISessionStore
from clinvk.sessions.memory import MemorySessionStore
from clinvk.sessions.record import (
    ACTIVE,
    COMPLETED,
    ERROR,
    PAUSED,
    SessionNotFound,
    SessionPage,
    SessionRecord,
    StoreError,
    StoreHealth,
    check_prefix,
    check_session_id,
    format_timestamp,
    new_session_id,
    parse_timestamp,
)
from clinvk.sessions.service import SessionStoreService

__all__ = [
    "ACTIVE",
    "COMPLETED",
    "ERROR",
    "PAUSED",
    "DiskSessionStore",
    "ISessionStore",
    "MemorySessionStore",
    "RunBlocking",
    "SessionFiles",
    "SessionNotFound",
    "SessionPage",
    "SessionRecord",
    "SessionStoreService",
    "StoreError",
    "StoreHealth",
    "check_prefix",
    "check_session_id",
    "format_timestamp",
    "in_thread_pool",
    "new_session_id",
    "parse_timestamp",
    "sessions_directory",
]
