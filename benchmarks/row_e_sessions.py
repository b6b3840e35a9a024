"""
Row e: C{GET /api/v1/sessions?limit=50} and C{GET /api/v1/sessions/<prefix>}
with 10,000 stored sessions, against the same with 100.

The sessions are written straight into the store's directory as record
files in their file form (L{clinvk.sessions.record.SessionRecord.to_json});
the store itself then builds its index from them, as it does for records
written by the command-line tool, before the server starts.
"""

from __future__ import annotations

import json
import random
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.client import build_request
from benchmarks.harness import AUTHORIZATION, Bench, closed_loop, expect_status
from benchmarks.report import Line, verdict
from benchmarks.stats import Latencies, ms
from clinvk.model import TokenUsage
from clinvk.sessions.files import SessionFiles, sessions_directory
from clinvk.sessions.record import COMPLETED, SessionRecord

SMALL, LARGE = 100, 10_000
LIST_TARGET = 0.020
GET_TARGET = 0.005
PREFIX = 8


def session_ids(count: int, rng: random.Random) -> list[str]:
    """C{count} new session ids, no two sharing their first L{PREFIX} characters."""
    ids: dict[str, str] = {}
    while len(ids) < count:
        session_id = f"{rng.getrandbits(128):032x}"
        ids.setdefault(session_id[:PREFIX], session_id)
    return list(ids.values())


def store_sessions(home: Path, ids: list[str]) -> None:
    """Write a record for each of C{ids} into the store under C{home}, and let the store index them."""
    directory = Path(sessions_directory(str(home)))
    directory.mkdir(parents=True, mode=0o700)
    # Recent enough that the server's retention clean-up keeps them all.
    start = datetime.now(UTC) - timedelta(days=2)
    backends = ("claude", "codex", "gemini")
    for number, session_id in enumerate(ids):
        created = start + timedelta(seconds=number)
        record = SessionRecord(
            id=session_id,
            backend=backends[number % 3],
            created_at=created,
            last_used=created + timedelta(seconds=30),
            working_dir="/srv/project",
            backend_session_id=secrets.token_hex(8),
            model="sonnet",
            initial_prompt=f"Benchmark prompt number {number}",
            status=COMPLETED,
            turn_count=1 + number % 4,
            token_usage=TokenUsage(input_tokens=120, output_tokens=480),
            tags=("api",),
            title=f"Session {number}",
        )
        path = directory / f"{session_id}.json"
        path.write_text(json.dumps(record.to_json(), indent=2))
        path.chmod(0o600)
    # No index yet: the store rebuilds it from the records.
    SessionFiles(str(directory)).list(limit=1)


async def measure(bench: Bench, count: int, requests: int) -> tuple[Latencies, Latencies]:
    """The latencies of listing and of reading by prefix with C{count} stored sessions."""
    rng = random.Random(count)
    ids = session_ids(count, rng)
    server = await bench.start_server(f"row-e-{count}", prepare_home=lambda home: store_sessions(home, ids))
    port = server.port
    listing = build_request("GET", "/api/v1/sessions?limit=50", port=port, headers=AUTHORIZATION)
    chosen = [rng.choice(ids)[:PREFIX] for _ in range(requests)]
    gets = [
        build_request("GET", f"/api/v1/sessions/{prefix}", port=port, headers=AUTHORIZATION)
        for prefix in chosen
    ]
    ok = expect_status(200)
    # Warm-up: the index is read once, then cached until it changes.
    await closed_loop(bench.reactor, port, 1, lambda _: listing, requests=20, check=ok)
    await closed_loop(bench.reactor, port, 1, lambda number: gets[number], requests=20, check=ok)
    listed, _ = await closed_loop(bench.reactor, port, 1, lambda _: listing, requests=requests, check=ok)
    got, _ = await closed_loop(
        bench.reactor, port, 1, lambda number: gets[number], requests=requests, check=ok
    )
    await bench.stop(server)
    return Latencies.of(listed), Latencies.of(got)


async def run(bench: Bench) -> list[Line]:
    requests = 100 if bench.quick else 300
    small_list, small_get = await measure(bench, SMALL, requests)
    large_list, large_get = await measure(bench, LARGE, requests)
    growth = LARGE / SMALL
    bench.note(
        f"**e** — {requests} requests of each kind, one at a time on one connection, after 20 of warm-up; "
        f"the prefixes are the first {PREFIX} characters of random stored sessions. Growth is sub-linear "
        f"when the latency grows less than the number of sessions ({growth:.0f}×)."
    )

    def line(what: str, small: Latencies, large: Latencies, target: float) -> Line:
        ratio = large.p50 / small.p50
        return Line(
            row="e",
            what=f"{what}, {LARGE:,} sessions",
            clinvk=f"p50 {ms(large.p50)}, p99 {ms(large.p99)} ({ratio:.1f}× the {SMALL} sessions' p50)",
            baseline=f"{SMALL} sessions: p50 {ms(small.p50)}, p99 {ms(small.p99)}",
            target=f"p50 ≤ {ms(target)}; growth sub-linear (< {growth:.0f}×)",
            verdict=verdict(large.p50 <= target and ratio < growth),
        )

    return [
        line("`GET /api/v1/sessions?limit=50`", small_list, large_list, LIST_TARGET),
        line(
            f"`GET /api/v1/sessions/{{prefix}}` ({PREFIX}-character prefix)", small_get, large_get, GET_TARGET
        ),
    ]
