"""
Row g: live sessions with the real CLIs (docs/design/live-sessions.md), per
backend, against the project's model server, which answers at once: the
time to the first token and to the end of the answer for a new
conversation (its CLI started from cold, or taken warm from the processes
started ahead, docs/design/live-sessions.md#warm-pool), for a follow-up on the live
session, and for the same follow-up with live sessions off (the CLI
started again to resume the conversation); the end-to-end time of a
non-streaming follow-up; and the resident size of a live CLI with its
children.

The real CLIs come from C{CLINVK_REAL_CLIS} or, failing that, the
real-CLI suite's cache (C{.tox/real-clis/pinned}, which C{tox -e realcli}
fills); without them the row says so.  The model server runs in the
benchmark's own process on 127.0.0.1 and answers at once, so the times
are the CLIs' and clinvk's own.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.client import HTTPConnection, build_request, connect, json_request, now_ns
from benchmarks.harness import AUTHORIZATION, Bench, Server, children_of, memory_of, merged
from benchmarks.report import Line, Verdict, verdict
from benchmarks.stats import ms
from clinvk.testing.model_server import ModelServer, cli_environment

BACKENDS = ("claude", "codex", "gemini")
# What the issue allows a live new conversation and a follow-up over the
# model server's own time, and a non-streaming follow-up end to end.
ADDED_TARGET = 0.100
FOLLOW_UP_TARGET = 0.250
HEADLESS: dict[str, dict[str, Any]] = {
    "backends": {
        "codex": {"extra_flags": ["--skip-git-repo-check"]},
        "gemini": {"extra_flags": ["--skip-trust"]},
    },
    "server": {"metrics_enabled": True, "max_live_processes": 8},
}
WARM = merged(
    HEADLESS,
    {"backends": {name: {**HEADLESS["backends"].get(name, {}), "warm": 1} for name in BACKENDS}},
)
# How long a warm process is given to start before a new conversation
# takes it (gemini, the slowest, starts in about 5 s on a 2-core machine).
WARM_START = 8.0
PINNED = Path(__file__).resolve().parent.parent / ".tox" / "real-clis" / "pinned" / "node_modules" / ".bin"


def real_clis() -> Path | None:
    """The directory holding the real C{claude}, C{codex} and C{gemini}, if any."""
    given = os.environ.get("CLINVK_REAL_CLIS")
    for candidate in (Path(given) if given else None, PINNED):
        if candidate is not None and all((candidate / name).exists() for name in BACKENDS):
            return candidate
    return None


class Turn:
    """One streamed turn's timings, in seconds from the request."""

    def __init__(self) -> None:
        self.first_token = 0.0
        self.total = 0.0
        self.session_id = ""
        self.events: list[dict[str, Any]] = []


async def streamed_turn(connection: HTTPConnection, port: int, body: dict[str, Any]) -> Turn:
    """Send an NDJSON prompt; when its first message event and its end arrived."""
    turn = Turn()
    partial = b""
    started = now_ns()

    def sink(data: bytes, arrived: int) -> None:
        nonlocal partial
        partial += data
        *lines, partial = partial.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            turn.events.append(event)
            turn.session_id = turn.session_id or event.get("session_id", "")
            if event["type"] == "message" and not turn.first_token:
                turn.first_token = (arrived - started) / 1e9

    request = json_request(
        "POST",
        "/api/v1/prompt",
        port=port,
        document={**body, "output_format": "stream-json"},
        headers=AUTHORIZATION,
    )
    await connection.request(request, sink)
    turn.total = (now_ns() - started) / 1e9
    kinds = [event["type"] for event in turn.events]
    if "error" in kinds or not turn.first_token:
        raise RuntimeError(f"the turn failed: {turn.events}")
    return turn


async def json_turn(connection: HTTPConnection, port: int, body: dict[str, Any]) -> float:
    """A non-streaming prompt's time, request to whole answer."""
    started = now_ns()
    response = await connection.request(
        json_request("POST", "/api/v1/prompt", port=port, document=body, headers=AUTHORIZATION)
    )
    elapsed = (now_ns() - started) / 1e9
    answer = json.loads(response.body)
    if answer.get("exit_code") != 0:
        raise RuntimeError(f"the turn failed: {answer}")
    return elapsed


async def delete_session(connection: HTTPConnection, port: int, session_id: str) -> None:
    """Delete a session (and so end its live process)."""
    await connection.request(
        build_request("DELETE", f"/api/v1/sessions/{session_id}", port=port, headers=AUTHORIZATION)
    )


def live_rss(server: Server) -> int:
    """The resident size of the server's live CLIs, with their children, but not its group reaper (bytes)."""
    total = 0
    pending = list(children_of(server.pid))
    while pending:
        pid = pending.pop()
        try:
            if b"clinvk-reaper" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            total += memory_of(pid)["VmRSS"]
        except (OSError, KeyError):
            continue
        pending += children_of(pid)
    return total


def median(values: list[float]) -> float:
    return statistics.median(values)


async def measure_backend(bench: Bench, live: Server, cold: Server, backend: str, rounds: int) -> list[Line]:
    news, follow_ups, colds, jsons = [], [], [], []
    rss = []
    for _ in range(rounds):
        connection = await connect(bench.reactor, live.port)
        try:
            new = await streamed_turn(connection, live.port, {"backend": backend, "prompt": "Start a story"})
            follow = await streamed_turn(
                connection, live.port, {"prompt": "Go on", "session_id": new.session_id}
            )
            jsons.append(
                await json_turn(connection, live.port, {"prompt": "And?", "session_id": new.session_id})
            )
            rss.append(live_rss(live))
            await delete_session(connection, live.port, new.session_id)
        finally:
            connection.close()
        news.append(new)
        follow_ups.append(follow)
        connection = await connect(bench.reactor, cold.port)
        try:
            first = await streamed_turn(
                connection, cold.port, {"backend": backend, "prompt": "Start a story"}
            )
            colds.append(
                await streamed_turn(
                    connection, cold.port, {"prompt": "Go on", "session_id": first.session_id}
                )
            )
        finally:
            connection.close()

    follow_first = median([t.first_token for t in follow_ups])
    follow_json = median(jsons)
    mib = median([float(size) for size in rss]) / (1 << 20)
    return [
        Line(
            row="g",
            what=f"{backend}: new conversation (the CLI starts cold)",
            clinvk=timing(news),
            baseline="—",
            target="—",
            verdict=Verdict.INFO,
        ),
        Line(
            row="g",
            what=f"{backend}: follow-up on a live session (NDJSON)",
            clinvk=timing(follow_ups),
            baseline=f"live sessions off: {timing(colds)}",
            target=f"≤ {ms(ADDED_TARGET)} added over the model server",
            verdict=verdict(follow_first <= ADDED_TARGET),
        ),
        Line(
            row="g",
            what=f"{backend}: follow-up on a live session (JSON, end to end)",
            clinvk=ms(follow_json),
            baseline="—",
            target=f"< {ms(FOLLOW_UP_TARGET)} (claude and gemini)",
            verdict=verdict(follow_json < FOLLOW_UP_TARGET) if backend != "codex" else Verdict.INFO,
        ),
        Line(
            row="g",
            what=f"{backend}: resident size of one live CLI, with its children",
            clinvk=f"{mib:.0f} MiB",
            baseline="—",
            target="—",
            verdict=Verdict.INFO,
        ),
    ]


def timing(turns: list[Turn]) -> str:
    first, end = median([t.first_token for t in turns]), median([t.total for t in turns])
    return f"first token {ms(first)}, end {ms(end)}"


async def measure_warm(bench: Bench, warm: Server, backend: str, rounds: int) -> Line:
    """New conversations that each take the process kept warm, given time to start first."""
    news = []
    for _ in range(rounds):
        await bench.sleep(WARM_START)
        connection = await connect(bench.reactor, warm.port)
        try:
            new = await streamed_turn(connection, warm.port, {"backend": backend, "prompt": "Start a story"})
            await delete_session(connection, warm.port, new.session_id)
        finally:
            connection.close()
        news.append(new)
    first = median([t.first_token for t in news])
    return Line(
        row="g",
        what=f"{backend}: new conversation taking a warm process (NDJSON)",
        clinvk=timing(news),
        baseline="—",
        target=f"≤ {ms(ADDED_TARGET)} added over the model server",
        verdict=verdict(first <= ADDED_TARGET),
    )


async def run(bench: Bench) -> list[Line]:
    clis = real_clis()
    if clis is None:
        bench.note("**g** — not measured: the real CLIs are not installed (`tox -e realcli` installs them).")
        return [Line("g", "live sessions with the real CLIs", "not measured", "—", "—", Verdict.INFO)]
    model = ModelServer(bench.reactor)
    model.listen()
    try:
        rounds = 2 if bench.quick else 5

        def environment(home: Path) -> dict[str, str]:
            return {
                **cli_environment(model.url, home),
                "PATH": f"{clis}{os.pathsep}{os.environ.get('PATH', '')}",
            }

        live = await bench.start_server("row-g-live", HEADLESS, environment=environment)
        cold = await bench.start_server(
            "row-g-cold", merged(HEADLESS, {"server": {"live_idle_secs": 0}}), environment=environment
        )
        lines = []
        for backend in BACKENDS:
            lines += await measure_backend(bench, live, cold, backend, rounds)
        await bench.stop(live)
        await bench.stop(cold)
        # Alone on the machine: the warm processes would idle beside the rest.
        warm = await bench.start_server("row-g-warm", WARM, environment=environment)
        for backend in BACKENDS:
            lines.append(await measure_warm(bench, warm, backend, rounds))
    finally:
        await bench.stop_all()
        await model.stop()
    bench.note(
        f"**g** — the real CLIs ({clis}), {rounds} rounds per backend: a new session's first turn "
        "(NDJSON), a follow-up on it (NDJSON) and another (JSON), then the session deleted; and the "
        "same two streamed turns on a server with `server.live_idle_secs: 0`. Then, on a server "
        f"keeping one process of each backend warm, new sessions' first turns (NDJSON), each "
        f"{WARM_START:.0f} s after the last, for the replacement to start. Medians. The model "
        "server answers at once (a few milliseconds), so the times are the CLIs' and clinvk's own. "
        "The resident size is of everything the server runs but its group reaper, with one live CLI."
    )
    return lines
