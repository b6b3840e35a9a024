"""
Tests for L{clinvk.sessions.record}: the file form of a record,
timestamps and identifiers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

from attrs import evolve

from twisted.trial.unittest import SynchronousTestCase

from clinvk.model import TokenUsage
from clinvk.sessions.record import (
    ZERO_TIME,
    SessionNotFound,
    SessionRecord,
    check_prefix,
    check_session_id,
    format_timestamp,
    new_session_id,
    parse_timestamp,
)
from tests.sessions.helpers import EXAMPLE, EXAMPLE_FILE, T0


class TimestampTests(SynchronousTestCase):
    """Reading and writing RFC 3339 timestamps."""

    def test_reference_form(self) -> None:
        """Nanoseconds and a numeric offset, as the reference writes them, are read (truncated)."""
        moment = parse_timestamp("2025-03-04T11:02:11.518204312+01:00")
        self.assertEqual(moment, datetime(2025, 3, 4, 10, 2, 11, 518204, tzinfo=UTC))
        self.assertEqual(moment.utcoffset(), timedelta(hours=1))

    def test_fraction_lengths(self) -> None:
        """One to nine fractional digits are read; beyond microseconds they are truncated."""
        expected = {
            "1": 100000,
            "12": 120000,
            "123456": 123456,
            "1234567": 123456,
            "999999999": 999999,
        }
        for digits, microseconds in expected.items():
            moment = parse_timestamp(f"2025-03-04T10:02:11.{digits}Z")
            self.assertEqual(moment.microsecond, microseconds, digits)

    def test_no_fraction(self) -> None:
        """Whole seconds (the reference omits a zero fraction) are read."""
        self.assertEqual(parse_timestamp("2025-03-04T10:02:11Z"), datetime(2025, 3, 4, 10, 2, 11, tzinfo=UTC))

    def test_zones(self) -> None:
        """C{Z}, C{z}, C{+00:00} and negative offsets give aware datetimes at the right instant."""
        for text in ("2025-03-04T10:02:11Z", "2025-03-04T10:02:11z", "2025-03-04T10:02:11+00:00"):
            self.assertEqual(parse_timestamp(text), datetime(2025, 3, 4, 10, 2, 11, tzinfo=UTC), text)
        moment = parse_timestamp("2025-03-04T05:32:11.5-04:30")
        self.assertEqual(moment.utcoffset(), -timedelta(hours=4, minutes=30))
        self.assertEqual(moment, datetime(2025, 3, 4, 10, 2, 11, 500000, tzinfo=UTC))

    def test_zero_time(self) -> None:
        """The reference's zero time is read."""
        self.assertEqual(parse_timestamp("0001-01-01T00:00:00Z"), ZERO_TIME)

    def test_invalid(self) -> None:
        """Missing offsets, too many digits and non-dates are refused with L{ValueError}."""
        for text in (
            "2025-03-04T10:02:11",
            "2025-03-04T10:02:11.1234567890Z",
            "2025-03-04T10:02:11.Z",
            "2025-13-04T10:02:11Z",
            "2025-03-04T10:02:11+24:00",
            "2025-03-04T10:02:11+01:60",
            "yesterday",
            "",
        ):
            self.assertRaises(ValueError, parse_timestamp, text)

    def test_format(self) -> None:
        """Timestamps are written in UTC with microseconds and C{+00:00}."""
        moment = datetime(2025, 3, 4, 11, 2, 11, tzinfo=timezone(timedelta(hours=1)))
        self.assertEqual(format_timestamp(moment), "2025-03-04T10:02:11.000000+00:00")
        self.assertEqual(format_timestamp(T0), "2025-03-04T10:02:11.518204+00:00")

    def test_format_naive(self) -> None:
        """A naive datetime is taken to be in UTC."""
        self.assertEqual(
            format_timestamp(datetime(2025, 3, 4, 10, 2, 11)), "2025-03-04T10:02:11.000000+00:00"
        )

    def test_round_trip(self) -> None:
        """What is written reads back as the same instant."""
        moment = parse_timestamp("2025-03-04T11:02:11.518204312+01:00")
        self.assertEqual(parse_timestamp(format_timestamp(moment)), moment)


class IdentifierTests(SynchronousTestCase):
    """New ids and the validation of ids and prefixes."""

    def test_new_session_id(self) -> None:
        """New ids are 32 lowercase hex characters, and differ."""
        ids = {new_session_id() for _ in range(100)}
        self.assertEqual(len(ids), 100)
        for session_id in ids:
            self.assertRegex(session_id, r"\A[0-9a-f]{32}\Z")

    def assert_prefix_refused(self, prefix: str, reason: str) -> None:
        error = self.assertRaises(SessionNotFound, check_prefix, prefix)
        self.assertEqual(str(error), reason)

    def test_prefix_reasons(self) -> None:
        """Prefixes are checked for emptiness, then path characters, then hex digits."""
        self.assert_prefix_refused("", "session prefix cannot be empty")
        for prefix in ("ab/cd", "ab\\cd", "..", "a..b", "../X"):
            self.assert_prefix_refused(prefix, "invalid session prefix: contains path characters")
        for prefix in ("ABC", "7A41", "xyz", "ab.c", "ab cd", "é"):
            self.assert_prefix_refused(
                prefix, "invalid session prefix: must contain only hex characters (0-9, a-f)"
            )

    def test_valid_prefixes(self) -> None:
        """Lowercase hex prefixes of any length pass."""
        for prefix in ("7", "7a41", "7a41c0e9b2d84f3a9c6e15d08b2f4a61", "0123456789abcdef" * 3):
            check_prefix(prefix)

    def test_session_id(self) -> None:
        """
        Full ids must be non-empty and free of path characters; ids of 16
        or 32 characters must be lowercase hex, other lengths are legacy.
        """
        for session_id in ("7a41c0e9b2d84f3a", "7a41c0e9b2d84f3a9c6e15d08b2f4a61", "legacy-id", "a.b"):
            check_session_id(session_id)
        refused = {
            "": "session ID cannot be empty",
            "a/b": "invalid session ID: contains path characters",
            "a\\b": "invalid session ID: contains path characters",
            "..": "invalid session ID: contains path characters",
            "7A41C0E9B2D84F3A": "invalid session ID format",
            "7A41c0e9b2d84f3a9c6e15d08b2f4a61": "invalid session ID format",
            "7a41c0e9b2d84f3g": "invalid session ID format",
        }
        for session_id, reason in refused.items():
            error = self.assertRaises(SessionNotFound, check_session_id, session_id)
            self.assertEqual(str(error), reason)


class RecordTests(SynchronousTestCase):
    """The file form of L{SessionRecord}."""

    def test_example(self) -> None:
        """The example of docs/design/session-store.md#session-record is written member for member."""
        self.assertEqual(json.dumps(EXAMPLE.to_json(), indent=2), EXAMPLE_FILE)

    def test_minimal(self) -> None:
        """Empty members are omitted, except C{working_dir}."""
        record = SessionRecord(id="a" * 32, backend="claude", created_at=T0, last_used=T0)
        self.assertEqual(
            list(record.to_json()),
            ["id", "backend", "created_at", "last_used", "working_dir"],
        )
        self.assertEqual(record.to_json()["working_dir"], "")

    def test_full(self) -> None:
        """Every member, in the reference's order; zero token counts are still written."""
        record = evolve(
            EXAMPLE,
            token_usage=TokenUsage(),
            title="t",
            parent_id="p",
            error_message="e",
        )
        data = record.to_json()
        self.assertEqual(
            list(data),
            [
                "id",
                "backend",
                "created_at",
                "last_used",
                "working_dir",
                "backend_session_id",
                "model",
                "initial_prompt",
                "status",
                "turn_count",
                "token_usage",
                "tags",
                "title",
                "parent_id",
                "error_message",
                "metadata",
            ],
        )
        self.assertEqual(data["token_usage"], {"input_tokens": 0, "output_tokens": 0})

    def test_optional_token_counts(self) -> None:
        """Cached and reasoning tokens are written when non-zero."""
        record = evolve(EXAMPLE, token_usage=TokenUsage(1, 2, 3, 4))
        self.assertEqual(
            record.to_json()["token_usage"],
            {"input_tokens": 1, "output_tokens": 2, "cached_tokens": 3, "reasoning_tokens": 4},
        )

    def test_round_trip(self) -> None:
        """A record reads back equal from its file form."""
        record = evolve(EXAMPLE, token_usage=TokenUsage(1, 2, 3, 4), title="t", parent_id="p")
        self.assertEqual(SessionRecord.from_json(json.loads(json.dumps(record.to_json()))), record)

    def test_reference_file(self) -> None:
        """A file of the command-line tool is read: nanoseconds, offsets, a legacy id, unknown members."""
        record = SessionRecord.from_json(
            {
                "id": "7a41c0e9b2d84f3a",
                "backend": "claude",
                "created_at": "2025-03-04T11:02:11.518204312+01:00",
                "last_used": "2025-03-04T10:05:00Z",
                "working_dir": "/tmp",
                "future_member": {"x": 1},
                "tags": None,
                "token_usage": None,
            }
        )
        self.assertEqual(record.id, "7a41c0e9b2d84f3a")
        self.assertEqual(record.created_at, T0)
        self.assertIsNotNone(record.created_at.tzinfo)
        self.assertEqual(record.last_used, datetime(2025, 3, 4, 10, 5, tzinfo=UTC))
        self.assertEqual((record.tags, record.token_usage, record.status), ((), None, ""))

    def test_missing_timestamps(self) -> None:
        """Missing timestamps read as the reference's zero time."""
        record = SessionRecord.from_json({"id": "abc", "backend": "claude"})
        self.assertEqual((record.created_at, record.last_used), (ZERO_TIME, ZERO_TIME))

    def test_unusable(self) -> None:
        """Content of the wrong shape is refused with L{ValueError}."""
        base: dict[str, Any] = {"id": "a" * 32, "backend": "claude", "created_at": "2025-03-04T10:02:11Z"}
        cases: list[Any] = [
            [],
            {},
            {**base, "id": ""},
            {**base, "id": 7},
            {**base, "backend": ["claude"]},
            {**base, "created_at": "yesterday"},
            {**base, "turn_count": "1"},
            {**base, "turn_count": 1.5},
            {**base, "turn_count": True},
            {**base, "tags": "api"},
            {**base, "tags": [1]},
            {**base, "metadata": {"a": 1}},
            {**base, "metadata": []},
            {**base, "token_usage": []},
            {**base, "token_usage": {"input_tokens": "1"}},
        ]
        for data in cases:
            self.assertRaises(ValueError, SessionRecord.from_json, data)

    def test_immutable_metadata(self) -> None:
        """The metadata is a private read-only copy; records hash and compare by value."""
        metadata = {"ticket": "OPS-1182"}
        record = evolve(EXAMPLE, metadata=metadata)
        metadata["ticket"] = "changed"
        self.assertEqual(dict(record.metadata), {"ticket": "OPS-1182"})

        def mutate() -> None:
            cast("dict[str, str]", record.metadata)["x"] = "y"

        self.assertRaises(TypeError, mutate)
        self.assertEqual(record, EXAMPLE)
        self.assertEqual(hash(record), hash(EXAMPLE))
        self.assertNotEqual(record, evolve(EXAMPLE, metadata={}))
