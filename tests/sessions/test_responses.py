"""
The stored responses of the Responses API
(docs/design/responses-api.md#responses-store).
"""

from __future__ import annotations

import json
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from clinvk.errors import StoreError
from clinvk.sessions.responses import ResponseFiles, ResponseStore, StoredResponse, responses_directory

RESPONSE_ID = "resp_0123456789abcdef01234567"


def stored(response_id: str = RESPONSE_ID) -> StoredResponse:
    return StoredResponse(
        {"id": response_id, "object": "response"}, (("user", "hi"), ("assistant", "4")), "s1"
    )


class FilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.join(self.mktemp(), "responses")
        self.files = ResponseFiles(self.directory)

    def test_round_trip(self) -> None:
        """Saved, a response is read back whole; its file and directory are private."""
        self.files.save(stored())
        self.assertEqual(self.files.load(RESPONSE_ID), stored())
        path = os.path.join(self.directory, f"{RESPONSE_ID}.json")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.directory).st_mode), 0o700)
        with open(path) as f:
            self.assertEqual(json.load(f)["history"], [["user", "hi"], ["assistant", "4"]])

    def test_delete(self) -> None:
        self.files.save(stored())
        self.assertTrue(self.files.delete(RESPONSE_ID))
        self.assertIsNone(self.files.load(RESPONSE_ID))
        self.assertFalse(self.files.delete(RESPONSE_ID))

    def test_other_names(self) -> None:
        """Only response ids name files: anything else is no response, never a path."""
        for name in ("../sessions/x", "resp_0", "resp_0123456789ABCDEF01234567", ""):
            self.assertIsNone(self.files.load(name))
            self.assertFalse(self.files.delete(name))

    def test_unreadable(self) -> None:
        """A damaged file is no response."""
        os.makedirs(self.directory)
        for content in ("{", '{"response": {"id": "x"}, "history": [["user"]]}', "[]"):
            with open(os.path.join(self.directory, f"{RESPONSE_ID}.json"), "w") as f:
                f.write(content)
            self.assertIsNone(self.files.load(RESPONSE_ID))

    def test_write_failure(self) -> None:
        """A directory that cannot be made is a StoreError."""
        os.makedirs(os.path.dirname(self.directory))
        with open(self.directory, "w"):
            pass
        self.assertRaises(StoreError, self.files.save, stored())

    def test_directory(self) -> None:
        self.assertEqual(responses_directory("/home/u"), "/home/u/.clinvk/responses")
        self.assertEqual(responses_directory(""), os.path.join(".clinvk", "responses"))


class StoreTests(SynchronousTestCase):
    def test_deferreds(self) -> None:
        store = ResponseStore(ResponseFiles(self.mktemp()))
        self.successResultOf(store.save(stored()))
        self.assertEqual(self.successResultOf(store.get(RESPONSE_ID)), stored())
        self.assertTrue(self.successResultOf(store.delete(RESPONSE_ID)))
        self.assertIsNone(self.successResultOf(store.get(RESPONSE_ID)))
