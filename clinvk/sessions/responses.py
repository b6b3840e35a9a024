# -*- test-case-name: tests.sessions.test_responses -*-
"""
The stored responses of the Responses API (docs/design/responses-api.md#responses-store):
one JSON file per response in C{<home>/.clinvk/responses/}, written
atomically, read and deleted by id.  A stored response keeps what
C{GET /openai/v1/responses/{id}} answers and the conversation it ended, so
that a request naming it in C{previous_response_id} can go on from there.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from attrs import frozen

from twisted.internet.defer import Deferred

from clinvk.errors import StoreError
from clinvk.sessions._filesystem import cause, write_atomically
from clinvk.sessions.blocking import RunBlocking, synchronously

# What clinvk.compat's response ids look like: nothing else names a file.
_RESPONSE_ID = re.compile(r"resp_[0-9a-f]{24}")


def responses_directory(home: str) -> str:
    """C{<home>/.clinvk/responses}, or the relative C{.clinvk/responses} without a home."""
    return os.path.join(home, ".clinvk", "responses") if home else os.path.join(".clinvk", "responses")


@frozen
class StoredResponse:
    """
    One stored response.

    @ivar body: The response object as the API returned it.
    @ivar history: The conversation it ended, C{(role, text)} turns
        without the system text, its own answer last.
    @ivar session_id: The session of that conversation, or C{""}.
    @ivar systems: The conversation's system and developer messages (not
        the request's instructions), in order.
    """

    body: Mapping[str, Any]
    history: tuple[tuple[str, str], ...]
    session_id: str = ""
    systems: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return str(self.body["id"])

    def to_json(self) -> dict[str, Any]:
        return {
            "response": dict(self.body),
            "history": [list(turn) for turn in self.history],
            "session_id": self.session_id,
            "systems": list(self.systems),
        }

    @classmethod
    def from_json(cls, data: Any) -> StoredResponse:
        """
        @raise ValueError: For anything but a stored response.
        """
        if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
            raise ValueError("not a stored response")
        history = data.get("history")
        if not isinstance(history, list) or not all(
            isinstance(turn, list) and len(turn) == 2 and all(isinstance(part, str) for part in turn)
            for turn in history
        ):
            raise ValueError("stored response: history is not a list of [role, text] pairs")
        session_id = data.get("session_id") or ""
        if not isinstance(session_id, str):
            raise ValueError("stored response: session_id is not a string")
        systems = data.get("systems") or []
        if not isinstance(systems, list) or not all(isinstance(text, str) for text in systems):
            raise ValueError("stored response: systems is not a list of strings")
        return cls(
            data["response"], tuple((role, text) for role, text in history), session_id, tuple(systems)
        )


def known_id(response_id: str) -> bool:
    """Whether C{response_id} has the form of a response id (and so names no other file)."""
    return _RESPONSE_ID.fullmatch(response_id) is not None


class ResponseFiles:
    """
    The stored responses in one directory, with blocking calls: run them
    away from the reactor thread (L{ResponseStore}).

    @param directory: Where the files are; created, mode C{0700}, on the
        first save.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def _path(self, response_id: str) -> str:
        return os.path.join(self._directory, f"{response_id}.json")

    def save(self, stored: StoredResponse) -> None:
        content = json.dumps(stored.to_json(), separators=(",", ":")).encode("utf-8")
        try:
            os.makedirs(self._directory, mode=0o700, exist_ok=True)
            write_atomically(self._directory, self._path(stored.id), content)
        except OSError as e:
            raise StoreError(f"failed to store response: {cause(e)}") from None

    def load(self, response_id: str) -> StoredResponse | None:
        """The response, or L{None} when there is none (or it cannot be read)."""
        if not known_id(response_id):
            return None
        try:
            with open(self._path(response_id), "rb") as f:
                return StoredResponse.from_json(json.loads(f.read()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None

    def delete(self, response_id: str) -> bool:
        """Delete the response; whether there was one."""
        if not known_id(response_id):
            return False
        try:
            os.unlink(self._path(response_id))
        except FileNotFoundError:
            return False
        except OSError as e:
            raise StoreError(f"failed to delete response: {cause(e)}") from None
        return True

    def clean(self, older_than: float) -> int:
        """Delete the responses written before C{older_than} (POSIX time); how many."""
        try:
            names = os.listdir(self._directory)
        except FileNotFoundError:
            return 0
        except OSError as e:
            raise StoreError(f"failed to list responses: {cause(e)}") from None
        deleted = 0
        for name in names:
            response_id = name.removesuffix(".json")
            if not (name.endswith(".json") and known_id(response_id)):
                continue
            try:
                if os.stat(self._path(response_id)).st_mtime < older_than:
                    os.unlink(self._path(response_id))
                    deleted += 1
            except FileNotFoundError:
                continue
            except OSError as e:
                raise StoreError(f"failed to clean responses: {cause(e)}") from None
        return deleted


class _Files(Protocol):
    def save(self, stored: StoredResponse) -> None: ...

    def load(self, response_id: str) -> StoredResponse | None: ...

    def delete(self, response_id: str) -> bool: ...

    def clean(self, older_than: float) -> int: ...


class MemoryResponseFiles:
    """L{ResponseFiles} in a dictionary, for tests and embedders without a disk."""

    def __init__(self) -> None:
        self.stored: dict[str, StoredResponse] = {}

    def save(self, stored: StoredResponse) -> None:
        self.stored[stored.id] = stored

    def load(self, response_id: str) -> StoredResponse | None:
        return self.stored.get(response_id)

    def delete(self, response_id: str) -> bool:
        return self.stored.pop(response_id, None) is not None

    def clean(self, older_than: float) -> int:
        # Kept in memory, they go with the process.
        return 0


class ResponseStore:
    """
    The stored responses, as Deferreds.

    @param files: The files (L{ResponseFiles}, or L{MemoryResponseFiles}).
    @param run_blocking: Runs each file operation; by default at once.
    """

    def __init__(self, files: _Files, run_blocking: RunBlocking = synchronously) -> None:
        self._files = files
        self._run = run_blocking

    def save(self, stored: StoredResponse) -> Deferred[None]:
        """Store C{stored}, replacing any response of its id; fails with L{StoreError}."""
        return self._run(lambda: self._files.save(stored))

    def get(self, response_id: str) -> Deferred[StoredResponse | None]:
        """The response of C{response_id}, or L{None}."""
        return self._run(lambda: self._files.load(response_id))

    def delete(self, response_id: str) -> Deferred[bool]:
        """Delete a response; fires with whether there was one."""
        return self._run(lambda: self._files.delete(response_id))

    def clean(self, older_than: datetime) -> Deferred[int]:
        """Retention: delete the responses stored before C{older_than}; fires with how many."""
        return self._run(lambda: self._files.clean(older_than.timestamp()))
