"""
Row a: C{GET /health} and C{GET /openai/v1/models} of clinvk, with API
keys and metrics enabled, against a bare Klein app answering the same
JSON (L{benchmarks.bare_app}), under the same load generator with the
same connections for the same time.

The servers are measured in alternating rounds, so that a burst of other
work on the machine does not land on one side only; each side's median
round is reported.  A third server, the bare app writing clinvk's access
log event for every request (as JSON lines to a file, as clinvk's does
under C{twist --log-file}), shows what that one required event costs.
"""

from __future__ import annotations

import sys

from benchmarks.client import build_request, connect
from benchmarks.harness import AUTHORIZATION, Bench, Server, free_port
from benchmarks.loadgen import Load, generator_name, run_load
from benchmarks.report import Line, Verdict, verdict
from benchmarks.stats import ms, rate

ROUTES = ("/health", "/openai/v1/models")
CONNECTIONS = 16
TARGET = 0.9


async def _body(bench: Bench, server: Server, route: str) -> bytes:
    connection = await connect(bench.reactor, server.port)
    try:
        response = await connection.request(
            build_request("GET", route, port=server.port, headers=AUTHORIZATION)
        )
    finally:
        connection.close()
    if response.status != 200:
        raise AssertionError(f"GET {route}: {response.status} {response.body!r}")
    return response.body


def _median(loads: list[Load]) -> Load:
    return sorted(loads, key=lambda load: load.throughput)[len(loads) // 2]


def _summary(load: Load) -> str:
    return f"{rate(load.throughput)}, p50 {ms(load.p50)}, p99 {ms(load.p99)}"


async def run(bench: Bench) -> list[Line]:
    seconds = 2.0 if bench.quick else 5.0
    rounds = 1 if bench.quick else 3
    clinvk = await bench.start_server("row-a-clinvk")
    files = bench.directory("row-a-bodies")
    arguments = []
    for number, route in enumerate(ROUTES):
        path = files / f"{number}.json"
        path.write_bytes(await _body(bench, clinvk, route))
        arguments.append(f"{route}={path}")
    bare_port = free_port()
    bare = await bench.start_process_server(
        "row-a-bare-klein",
        [sys.executable, "-m", "benchmarks.bare_app", str(bare_port), *arguments],
        bare_port,
    )
    logged_port = free_port()
    log_file = files / "access.log"
    logged = await bench.start_process_server(
        "row-a-bare-klein-logged",
        [
            sys.executable,
            "-m",
            "benchmarks.bare_app",
            "--access-log",
            str(log_file),
            str(logged_port),
            *arguments,
        ],
        logged_port,
    )
    work = bench.directory("row-a-loadgen")

    async def load(server: Server, route: str, duration: float) -> Load:
        result = await run_load(
            bench.reactor,
            f"http://127.0.0.1:{server.port}{route}",
            connections=CONNECTIONS,
            seconds=duration,
            headers=AUTHORIZATION,
            work=work,
        )
        if result.errors:
            raise AssertionError(f"{server.name} {route}: {result.errors} failed requests")
        return result

    lines = []
    servers = (clinvk, bare, logged)
    for route in ROUTES:
        # Warm them up: imports, caches and the first connections.
        for server in servers:
            await load(server, route, 1)
        measured: dict[str, list[Load]] = {server.name: [] for server in servers}
        for number in range(rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            for server in order:
                measured[server.name].append(await load(server, route, seconds))
        ours, theirs = _median(measured[clinvk.name]), _median(measured[bare.name])
        with_log = _median(measured[logged.name])
        ratio = ours.throughput / theirs.throughput
        log_ratio = with_log.throughput / theirs.throughput
        lines.append(
            Line(
                row="a",
                what=f"`GET {route}` throughput and latency, {CONNECTIONS} connections",
                clinvk=f"{_summary(ours)} (**{ratio:.2f}×**)",
                baseline=f"bare Klein app: {_summary(theirs)}",
                target=f"≥ {TARGET}× the bare app's throughput",
                verdict=verdict(ratio >= TARGET),
            )
        )
        lines.append(
            Line(
                row="a",
                what=f"of which: one access-log event per request, `GET {route}`",
                clinvk=(
                    f"bare app + clinvk's access-log event: {_summary(with_log)} ({log_ratio:.2f}× the bare "
                    f"app; clinvk is {ours.throughput / with_log.throughput:.2f}× this)"
                ),
                baseline="bare Klein app, as above",
                target="— (bounds the line above)",
                verdict=Verdict.INFO,
            )
        )
    for server in servers:
        await bench.stop(server)
    bench.note(
        f"**a** — load generator: {generator_name()}, one thread, {CONNECTIONS} keep-alive connections, "
        f"{rounds} alternating round(s) of {seconds:g} s per server and route after a 1 s warm-up; the "
        "median round of each side is shown. clinvk checks an API key (sent by the generator) and "
        "counts every request in its metrics and access log (JSON lines to a file, "
        "`python -m twisted --log-file`); the bare app answers the same bytes with nothing else. "
        "The third server is the bare app calling clinvk's `AccessLog` for each request, logging "
        "to a file the same way. The machine's cores are shared by the generator and the server, "
        "equally for every server."
    )
    return lines
