"""
Row d: 500 concurrent streaming requests (native NDJSON) against slow fake
CLIs, with the admission limits raised so that all of them run at once.
Every stream must complete; the server's resident memory may grow by at
most 64 KiB per request in flight, and must be at most 80 MB when idle.
"""

from __future__ import annotations

from twisted.internet.defer import gatherResults

from benchmarks import fake
from benchmarks.client import HTTPConnection, connect, json_request
from benchmarks.harness import AUTHORIZATION, Bench, children_of
from benchmarks.report import Line, verdict
from benchmarks.stats import KiB, kib, mib

GROWTH_TARGET = 64 * KiB
IDLE_TARGET = 80 * 1000 * 1000  # 80 MB


class EventCounter:
    """Counts the NDJSON events of one stream as they arrive."""

    def __init__(self) -> None:
        self._partial = b""
        self.messages = 0
        self.done = False

    def __call__(self, data: bytes, arrived: int) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            if b'"type":"message"' in line:
                self.messages += 1
            elif b'"type":"done"' in line:
                self.done = True


async def run(bench: Bench) -> list[Line]:
    streams = 100 if bench.quick else 500
    chunks, gap_us = (12, 250_000) if bench.quick else (40, 250_000)
    server = await bench.start_server(
        "row-d-clinvk",
        {"server": {"max_concurrent_runs": streams + 16, "max_queued_runs": streams + 16}},
    )
    port = server.port

    def request(prompt: str) -> bytes:
        body = {"backend": "claude", "prompt": prompt, "output_format": "stream-json", "ephemeral": True}
        return json_request("POST", "/api/v1/prompt", port=port, document=body, headers=AUTHORIZATION)

    # Warm-up: a few streams one after the other, then let the server settle.
    warm = await connect(bench.reactor, port)
    for _ in range(5):
        await warm.request(request(fake.prompt(chunks=3)), EventCounter())
    warm.close()
    await bench.sleep(1.0)
    idle = server.rss()
    exact_peak = server.reset_peak()

    connections: list[HTTPConnection] = [await connect(bench.reactor, port) for _ in range(streams)]
    counters = [EventCounter() for _ in range(streams)]
    slow = request(fake.prompt(chunks=chunks, gap_us=gap_us))
    waiting = [
        connection.request(slow, counter) for connection, counter in zip(connections, counters, strict=True)
    ]
    sampled_peak = idle
    most_children = 0
    all_started_at_rss = 0
    while not all(item.called for item in waiting):
        sampled_peak = max(sampled_peak, server.rss())
        most_children = max(most_children, len(children_of(server.pid)))
        if not all_started_at_rss and all(counter.messages for counter in counters):
            all_started_at_rss = server.rss()
        await bench.sleep(0.1)
    responses = await gatherResults(waiting, consumeErrors=True)
    peak = server.peak() if exact_peak else sampled_peak
    for connection in connections:
        connection.close()
    await bench.stop(server)

    complete = sum(
        1
        for response, counter in zip(responses, counters, strict=True)
        if response.status == 200 and counter.done and counter.messages == chunks
    )
    growth = (peak - idle) / streams
    bench.note(
        f"**d** — {streams} NDJSON streams opened at once on their own connections, each answered by a "
        f"fake that writes {chunks} deltas {gap_us / 1e6:g} s apart "
        f"(`max_concurrent_runs` and `max_queued_runs` raised to {streams + 16}). Idle memory is the "
        "server's resident size after a few warm-up streams; the peak is its "
        + ("`VmHWM`, reset at idle" if exact_peak else "resident size sampled every 0.1 s")
        + f". At most {most_children} child processes of the server ran at once; all streams had their "
        f"first event when the server's resident size was {mib(all_started_at_rss)}."
    )
    return [
        Line(
            row="d",
            what=f"{streams} concurrent streams against slow CLIs",
            clinvk=(
                f"{complete}/{streams} complete; peak {mib(peak)} − idle {mib(idle)} = "
                f"**{kib(growth)} per stream**"
            ),
            baseline=f"the idle server ({mib(idle)})",
            target=f"all complete; ≤ {kib(GROWTH_TARGET)} per request in flight",
            verdict=verdict(complete == streams and growth <= GROWTH_TARGET),
        ),
        Line(
            row="d",
            what="idle server resident size",
            clinvk=f"{mib(idle)} ({idle / 1e6:.1f} MB)",
            baseline="—",
            target="≤ 80 MB",
            verdict=verdict(idle <= IDLE_TARGET),
        ),
    ]
