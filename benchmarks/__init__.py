"""
clinvk's benchmark suite: the overhead of the server measured side by side
with what it wraps (a bare Klein app, spawning the CLI directly), on one
machine in one run.

Run every row with C{python -m benchmarks} (or C{tox -e bench}); the table
is printed and written to C{docs/performance.md}.  C{python -m benchmarks
--rows a,c --quick} runs a subset, shorter, for development.  The rows:

  - a: C{GET /health} and C{GET /openai/v1/models} against a bare Klein app
    (L{benchmarks.row_a_routes});
  - b: C{POST /api/v1/prompt} against spawning the CLI directly
    (L{benchmarks.row_b_prompt});
  - c: the time from the CLI writing a line to the client reading the
    event (L{benchmarks.row_c_stream_latency});
  - d: 500 concurrent streams (L{benchmarks.row_d_concurrency});
  - e: listing and reading sessions among 10,000 (L{benchmarks.row_e_sessions});
  - f: a 1 MiB prompt and a 50 MiB answer (L{benchmarks.row_f_large}).

Everything measured is started by the suite itself, on 127.0.0.1: the
server as a real process (L{benchmarks.harness}), and a fake CLI compiled
from C at the start of the run (L{benchmarks.fake}), which answers at once.
The suite never runs in CI.
"""
