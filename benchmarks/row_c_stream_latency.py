"""
Row c: the time from the CLI writing a line to the client receiving the
event made of it, for the three stream formats: the native NDJSON stream,
OpenAI's SSE and Anthropic's SSE.

The fake (C{bench:stamp=1}) writes each delta as C{@<ns>@}, its
C{CLOCK_MONOTONIC} just before the C{write}; the client reads the same
clock when the bytes of an event arrive.  Deltas are written a few
milliseconds apart, as a CLI streaming tokens does, so that each line is
measured on its own rather than queued behind the previous one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from attrs import frozen

from benchmarks import fake
from benchmarks.client import HTTPConnection, connect, json_request
from benchmarks.harness import AUTHORIZATION, Bench
from benchmarks.report import Line, verdict
from benchmarks.stats import Latencies, ms

P50_TARGET = 0.002
P99_TARGET = 0.010
GAP_US = 2000


@frozen
class Format:
    """A stream format: the request that asks for it."""

    name: str
    path: str
    body: Callable[[str], dict[str, Any]]
    headers: Mapping[str, str]


FORMATS = (
    Format(
        "NDJSON (`/api/v1/prompt`)",
        "/api/v1/prompt",
        lambda prompt: {
            "backend": "claude",
            "prompt": prompt,
            "output_format": "stream-json",
            "ephemeral": True,
        },
        AUTHORIZATION,
    ),
    Format(
        "OpenAI SSE (`/openai/v1/chat/completions`)",
        "/openai/v1/chat/completions",
        lambda prompt: {"model": "claude", "stream": True, "messages": [{"role": "user", "content": prompt}]},
        AUTHORIZATION,
    ),
    Format(
        "Anthropic SSE (`/anthropic/v1/messages`)",
        "/anthropic/v1/messages",
        lambda prompt: {
            "model": "claude",
            "max_tokens": 1024,
            "stream": True,
            "messages": [{"role": "user", "content": prompt}],
        },
        AUTHORIZATION,
    ),
)


class StampReader:
    """
    Splits a stream body into lines and, for each line that carries the
    fake's stamps, records how long after the stamp the line arrived.
    """

    def __init__(self) -> None:
        self._partial = b""
        self.delays: list[float] = []

    def __call__(self, data: bytes, arrived: int) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            for stamp in fake.stamps(line.decode("utf-8", "replace")):
                self.delays.append((arrived - stamp) / 1e9)


async def measure(
    bench: Bench, connection: HTTPConnection, port: int, form: Format, lines: int
) -> list[float]:
    """The delays of one streamed answer of C{lines} deltas in format C{form}."""
    prompt = fake.prompt(chunks=lines, gap_us=GAP_US, stamp=True)
    reader = StampReader()
    request = json_request("POST", form.path, port=port, document=form.body(prompt), headers=form.headers)
    response = await connection.request(request, reader)
    if response.status != 200:
        raise AssertionError(f"{form.path}: status {response.status}")
    if len(reader.delays) != lines:
        raise AssertionError(f"{form.path}: {len(reader.delays)} stamped events, not {lines}")
    return reader.delays


async def run(bench: Bench) -> list[Line]:
    lines_per_stream = 100 if bench.quick else 250
    streams = 2 if bench.quick else 4
    server = await bench.start_server("row-c-clinvk")
    connection = await connect(bench.reactor, server.port)
    results = []
    try:
        for form in FORMATS:
            await measure(bench, connection, server.port, form, 10)  # warm-up
            delays: list[float] = []
            for _ in range(streams):
                delays += await measure(bench, connection, server.port, form, lines_per_stream)
            results.append((form, Latencies.of(delays)))
    finally:
        connection.close()
    await bench.stop(server)
    bench.note(
        f"**c** — Claude stream-json with partial messages; {streams} streams of {lines_per_stream} deltas "
        f"{GAP_US / 1000:g} ms apart per format, one at a time on one connection. The delay runs from the "
        "fake's clock reading just before it writes a line to the client's reading as the bytes of the "
        "event arrive (both `CLOCK_MONOTONIC` on this machine)."
    )
    return [
        Line(
            row="c",
            what=f"CLI line → client event, {form.name}",
            clinvk=f"p50 {ms(latencies.p50)}, p99 {ms(latencies.p99)} ({latencies.count} events)",
            baseline="—",
            target=f"p50 ≤ {ms(P50_TARGET)}, p99 ≤ {ms(P99_TARGET)}",
            verdict=verdict(latencies.p50 <= P50_TARGET and latencies.p99 <= P99_TARGET),
        )
        for form, latencies in results
    ]
