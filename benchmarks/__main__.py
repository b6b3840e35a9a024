"""
C{python -m benchmarks [--rows a,b,...] [--quick] [--output FILE | --no-write]}:
run the rows, print the table, and write it to C{docs/performance.md}.
"""

from __future__ import annotations

import argparse
import importlib
import resource
import shutil
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from benchmarks import fake
from benchmarks.harness import Bench
from benchmarks.report import Line, Verdict, render_results, render_table, write_results

ROWS = {
    "a": "benchmarks.row_a_routes",
    "b": "benchmarks.row_b_prompt",
    "c": "benchmarks.row_c_stream_latency",
    "d": "benchmarks.row_d_concurrency",
    "e": "benchmarks.row_e_sessions",
    "f": "benchmarks.row_f_large",
    "g": "benchmarks.row_g_live",
}

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "performance.md"

# Row d holds hundreds of connections and pipes open in the server.
WANTED_OPEN_FILES = 16384


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, for development")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the report to write")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    arguments = parser.parse_args(argv)
    rows = [row.strip() for row in arguments.rows.split(",") if row.strip()]
    unknown = [row for row in rows if row not in ROWS]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    arguments.rows = rows
    return arguments


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, WANTED_OPEN_FILES)
    if soft < wanted:
        # Inherited by the servers the benchmark starts.
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


async def _main(reactor: Any, arguments: argparse.Namespace, command: str) -> None:
    _raise_open_files_limit()
    work = Path(tempfile.mkdtemp(prefix="clinvk-bench-"))
    try:
        fakes = await fake.build(reactor, work / "bin")
        bench = Bench(reactor, work, fakes, arguments.quick)
        failed = []
        for row in arguments.rows:
            module = importlib.import_module(ROWS[row])
            run: Callable[[Bench], Awaitable[list[Line]]] = module.run
            print(f"row {row}: running…", file=sys.stderr, flush=True)
            try:
                lines = await run(bench)
            except Exception:
                traceback.print_exc()
                failed.append(row)
                lines = [
                    Line(row, "the row failed: see the benchmark's output", "—", "—", "—", Verdict.MISSED)
                ]
            finally:
                await bench.stop_all()
            bench.lines.extend(lines)
            print(render_table(lines), file=sys.stderr, flush=True)
        print(render_table(bench.lines))
        if arguments.quick:
            bench.note(
                "**Quick run** (`--quick`): shorter and smaller than the full run; not the reference numbers."
            )
        if not arguments.no_write:
            write_results(arguments.output, render_results(bench.lines, bench.notes, command=command))
            print(f"written to {arguments.output}", file=sys.stderr)
        if failed:
            raise SystemExit(f"rows failed: {', '.join(failed)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> None:
    arguments = _arguments(argv)
    command = " ".join(["python -m benchmarks", *argv])

    def start(reactor: Any) -> Deferred[None]:
        return Deferred.fromCoroutine(_main(reactor, arguments, command))

    react(start)


if __name__ == "__main__":
    main(sys.argv[1:])
