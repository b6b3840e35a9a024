"""
Row b: C{POST /api/v1/prompt} (ephemeral, Claude, JSON output) at 1 and
16 concurrent clients, against spawning the same fake CLI with the same
arguments and stdin directly with C{reactor.spawnProcess} in a loop, in
the benchmark's own process.

The server starts every CLI as the leader of its own process group, as
L{clinvk.process.spawn.Launcher} does on this machine (directly with
C{posix_spawn} on Linux, otherwise through C{setsid} and C{setpriv}); that
spawn is also measured on its own, in the benchmark's process like the
direct baseline, so the table shows how much of the server's added
latency it accounts for, and so is the launcher chain that is the
fallback where the direct spawn is not available.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from benchmarks import fake
from benchmarks.client import Response, json_request, now_ns
from benchmarks.harness import AUTHORIZATION, Bench, closed_loop
from benchmarks.report import Line, Verdict, verdict
from benchmarks.stats import Latencies, ms, rate
from clinvk.process.spawn import Launcher

CONCURRENT = 16
ADDED_LATENCY_TARGET = 0.002
THROUGHPUT_TARGET = 0.7

# What the server runs for the request below (clinvk.backends.claude).
CLAUDE_FLAGS = ("--print", "--no-session-persistence", "--output-format", "json")
PROMPT = fake.prompt(text="hello")


class _Run(ProcessProtocol):
    """One spawned CLI: writes the prompt, keeps the output, fires when it has ended."""

    def __init__(self, stdin: bytes) -> None:
        self._stdin = stdin
        self.output: list[bytes] = []
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.output.append(data)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


async def spawn_loop(
    reactor: Any,
    spawner: IReactorProcess,
    argv: Sequence[str],
    env: dict[str, str],
    stdin: bytes,
    clients: int,
    *,
    runs: int | None = None,
    duration: float | None = None,
) -> tuple[list[float], float]:
    """
    C{clients} loops each spawning C{argv} with C{spawner} as soon as its
    previous run has ended, for C{runs} runs in all or C{duration} seconds.

    @return: The latency of every run (from spawning to its end) and the
        wall time of the whole loop, in seconds.
    """
    latencies: list[float] = []
    started = now_ns()
    stop_at = started + int(duration * 1e9) if duration is not None else None
    spawned = 0

    def more() -> bool:
        if runs is not None and spawned >= runs:
            return False
        return stop_at is None or now_ns() < stop_at

    async def loop() -> None:
        nonlocal spawned
        while more():
            spawned += 1
            begun = now_ns()
            run = _Run(stdin)
            spawner.spawnProcess(run, argv[0], list(argv), env=env)
            await run.ended
            latencies.append((now_ns() - begun) / 1e9)
            if b'"is_error":false' not in b"".join(run.output):
                raise AssertionError(f"unexpected output: {b''.join(run.output)[:300]!r}")

    await gatherResults([Deferred.fromCoroutine(loop()) for _ in range(clients)], consumeErrors=True)
    return latencies, (now_ns() - started) / 1e9


def _check(response: Response) -> None:
    if response.status != 200:
        raise AssertionError(f"status {response.status}: {response.body[:300]!r}")
    result = json.loads(response.body)
    if result.get("exit_code") != 0 or not result.get("output"):
        raise AssertionError(f"the prompt failed: {result}")


async def run(bench: Bench) -> list[Line]:
    runs = 100 if bench.quick else 400
    duration = 3.0 if bench.quick else 8.0
    server = await bench.start_server("row-b-clinvk")
    port = server.port
    body = {"backend": "claude", "prompt": PROMPT, "ephemeral": True}
    request = json_request("POST", "/api/v1/prompt", port=port, document=body, headers=AUTHORIZATION)
    env = bench.environment(server.home)
    argv = [bench.fake_path("claude"), *CLAUDE_FLAGS]
    spawners: dict[str, IReactorProcess] = {
        "direct": bench.reactor,
        "leader": Launcher.detect().spawner(bench.reactor),
        "launcher": Launcher.launched().spawner(bench.reactor),
    }
    leader_kind = type(spawners["leader"]).__name__
    stdin = PROMPT.encode()

    async def served(clients: int, **limit: Any) -> tuple[list[float], float]:
        return await closed_loop(bench.reactor, port, clients, lambda _: request, check=_check, **limit)

    async def spawned(name: str, clients: int, **limit: Any) -> tuple[list[float], float]:
        return await spawn_loop(bench.reactor, spawners[name], argv, env, stdin, clients, **limit)

    # Warm-up: the server's first requests, the page cache, the fake.
    await served(4, requests=40)
    for name in spawners:
        await spawned(name, 4, runs=40)

    # Alternate, so that a burst of other work on the machine does not land on one side only.
    one: dict[str, list[float]] = {"server": [], **{name: [] for name in spawners}}
    for _ in range(2):
        one["server"] += (await served(1, requests=runs // 2))[0]
        for name in spawners:
            one[name] += (await spawned(name, 1, runs=runs // 2))[0]
    many: dict[str, tuple[list[float], float]] = {"server": await served(CONCURRENT, duration=duration)}
    for name in spawners:
        many[name] = await spawned(name, CONCURRENT, duration=duration)
    await bench.stop(server)

    single = {name: Latencies.of(values) for name, values in one.items()}
    throughput = {name: len(values) / took for name, (values, took) in many.items()}
    concurrent = {name: Latencies.of(values) for name, (values, _) in many.items()}
    added = single["server"].p50 - single["direct"].p50
    ratio = throughput["server"] / throughput["direct"]

    def spawn_line(name: str, what: str, target: str) -> Line:
        spawn_added = single[name].p50 - single["direct"].p50
        return Line(
            row="b",
            what=what,
            clinvk=(
                f"1 client: p50 {ms(single[name].p50)} (added {ms(spawn_added)}); "
                f"{CONCURRENT}: {rate(throughput[name])} ({throughput[name] / throughput['direct']:.2f}×)"
            ),
            baseline="`spawnProcess` of the fake, as above",
            target=target,
            verdict=Verdict.INFO,
        )

    lines = [
        Line(
            row="b",
            what="`POST /api/v1/prompt` (ephemeral) latency, 1 client",
            clinvk=(
                f"p50 {ms(single['server'].p50)}, p99 {ms(single['server'].p99)}; **added p50 {ms(added)}**"
            ),
            baseline=(
                f"`spawnProcess` of the fake: p50 {ms(single['direct'].p50)}, p99 {ms(single['direct'].p99)}"
            ),
            target=f"median added latency ≤ {ms(ADDED_LATENCY_TARGET)}",
            verdict=verdict(added <= ADDED_LATENCY_TARGET),
        ),
        Line(
            row="b",
            what=f"`POST /api/v1/prompt` (ephemeral) throughput, {CONCURRENT} clients",
            clinvk=f"{rate(throughput['server'])}, p50 {ms(concurrent['server'].p50)} (**{ratio:.2f}×**)",
            baseline=(
                f"`spawnProcess` of the fake: {rate(throughput['direct'])}, "
                f"p50 {ms(concurrent['direct'].p50)}"
            ),
            target=f"≥ {THROUGHPUT_TARGET}× at {CONCURRENT}",
            verdict=verdict(ratio >= THROUGHPUT_TARGET),
        ),
        spawn_line(
            "leader",
            f"of which: starting the fake as a group leader alone (`{leader_kind}`)",
            "— (part of the two lines above)",
        ),
        spawn_line(
            "launcher", "for comparison: the fallback launcher chain alone (`setsid`, `setpriv`)", "—"
        ),
    ]
    bench.note(
        f"**b** — each client keeps one connection and sends its next request when the answer has "
        f"arrived; {runs} requests at 1 client, {duration:g} s at {CONCURRENT}. The baseline spawns "
        f"`{os.path.basename(argv[0])} {' '.join(CLAUDE_FLAGS)}` (what the server runs) from the "
        "benchmark's process with the same stdin and environment, and waits for its end. The group "
        "leader line spawns the same command as the server does, with "
        "`clinvk.process.spawn.Launcher.detect().spawner(reactor)`; the launcher chain line with "
        "`Launcher.launched().spawner(reactor)`, the way of systems without the direct spawn."
    )
    return lines
