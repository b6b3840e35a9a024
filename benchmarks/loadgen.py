"""
The load generator of row a: C{wrk}, run as a separate process with one
thread and a fixed number of keep-alive connections, reporting its
latency percentiles through a Lua C{done} hook.

Where C{wrk} is missing, a generator written with the benchmark's own
client (L{benchmarks.client}) runs in a separate Python process instead:
C{python -m benchmarks.loadgen URL CONNECTIONS SECONDS [HEADER...]}.  It
spends more of the machine on itself, which the report says.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from attrs import frozen

from twisted.internet.defer import Deferred

from benchmarks.client import Response, build_request
from benchmarks.harness import WatchedProcess, closed_loop
from benchmarks.stats import percentile

# Printed by wrk at the end of a run: requests, seconds, errors (socket
# errors, and responses other than 2xx and 3xx) and latency percentiles in
# microseconds, as one JSON line.
DONE_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@frozen
class Load:
    """
    The result of a load run.

    @ivar requests: Requests completed.
    @ivar seconds: How long the run took.
    @ivar errors: Failed requests and non-2xx answers.
    @ivar p50: Median latency, seconds.
    @ivar p99: 99th percentile latency, seconds.
    """

    requests: int
    seconds: float
    errors: int
    p50: float
    p99: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds


def generator_name() -> str:
    """The load generator this machine runs."""
    return "wrk" if shutil.which("wrk") else "benchmarks.loadgen (Python)"


async def run_load(
    reactor: Any,
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: Mapping[str, str],
    work: Path,
) -> Load:
    """Load C{url} with C{connections} for C{seconds}; see the module docstring."""
    wrk = shutil.which("wrk")
    if wrk is not None:
        script = work / "done.lua"
        script.write_text(DONE_SCRIPT)
        command = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script)]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command.append(url)
    else:
        command = [sys.executable, "-m", "benchmarks.loadgen", url, str(connections), f"{seconds:g}"]
        command += [f"{name}: {value}" for name, value in headers.items()]
    watched = WatchedProcess()
    reactor.spawnProcess(watched, command[0], command, env=None, path=str(Path(__file__).parent.parent))
    status = await watched.ended
    lines = [line for line in watched.text().splitlines() if line.startswith("{")]
    if status != 0 or not lines:
        raise RuntimeError(f"load generator failed ({status}):\n{watched.text()}")
    result = json.loads(lines[-1])
    return Load(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        errors=result["errors"] + result["status_errors"],
        p50=result["p50_us"] / 1e6,
        p99=result["p99_us"] / 1e6,
    )


async def _generate(reactor: Any, url: str, connections: int, seconds: float, headers: Sequence[str]) -> None:
    parts = urlsplit(url)
    port = parts.port or 80
    header_map = dict(header.split(": ", 1) for header in headers)
    request = build_request("GET", parts.path or "/", port=port, headers=header_map)
    errors = 0

    def check(response: Response) -> None:
        nonlocal errors
        if not 200 <= response.status < 400:
            errors += 1

    latencies, took = await closed_loop(
        reactor, port, connections, lambda _: request, duration=seconds, check=check
    )
    line = {
        "requests": len(latencies),
        "duration_us": int(took * 1e6),
        "errors": 0,
        "status_errors": errors,
        "p50_us": int(percentile(latencies, 0.5) * 1e6),
        "p99_us": int(percentile(latencies, 0.99) * 1e6),
    }
    print(json.dumps(line))


def main(argv: list[str]) -> None:
    from twisted.internet.task import react

    url, connections, seconds, *headers = argv

    def run(reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(_generate(reactor, url, int(connections), float(seconds), headers))

    react(run)


if __name__ == "__main__":
    main(sys.argv[1:])
