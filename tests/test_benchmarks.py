"""
The benchmark suite's own pure helpers (L{benchmarks}): percentiles, the
table and the report file.  The benchmarks themselves never run in the
test suite.
"""

from __future__ import annotations

from datetime import UTC, datetime

from twisted.trial.unittest import SynchronousTestCase

from benchmarks import fake
from benchmarks.report import (
    BEGIN_MARKER,
    END_MARKER,
    Line,
    Verdict,
    render_results,
    render_table,
    replace_results,
)
from benchmarks.row_c_stream_latency import StampReader
from benchmarks.stats import Latencies, percentile


class PercentileTests(SynchronousTestCase):
    def test_interpolates(self) -> None:
        values = [4.0, 1.0, 3.0, 2.0]
        self.assertEqual(percentile(values, 0), 1.0)
        self.assertEqual(percentile(values, 1), 4.0)
        self.assertEqual(percentile(values, 0.5), 2.5)
        self.assertAlmostEqual(percentile(list(range(101)), 0.99), 99.0)

    def test_single(self) -> None:
        self.assertEqual(Latencies.of([0.25]), Latencies(1, 0.25, 0.25))

    def test_refuses(self) -> None:
        self.assertRaises(ValueError, percentile, [], 0.5)
        self.assertRaises(ValueError, percentile, [1.0], 1.5)


class ReportTests(SynchronousTestCase):
    line = Line("a", "GET /x", "1 | 2", "bare", "≥ 0.9×", Verdict.MET)

    def test_table(self) -> None:
        table = render_table([self.line])
        self.assertEqual(
            table.splitlines(),
            [
                "| # | What | clinvk | Compared with | Target | Result |",
                "|---|---|---|---|---|---|",
                "| a | GET /x | 1 \\| 2 | bare | ≥ 0.9× | met |",
            ],
        )

    def test_results(self) -> None:
        text = render_results(
            [self.line],
            ["how a was measured"],
            command="python -m benchmarks",
            when=datetime(2026, 3, 4, 5, 6, tzinfo=UTC),
            machine=[("CPU", "Test CPU")],
        )
        self.assertIn("Measured on 2026-03-04 05:06 UTC with `python -m benchmarks`.", text)
        self.assertIn("| CPU | Test CPU |", text)
        self.assertIn("| a | GET /x |", text)
        self.assertIn("- how a was measured", text)

    def test_replaces_between_markers(self) -> None:
        document = f"intro\n\n{BEGIN_MARKER}\n\nold table\n\n{END_MARKER}\n\n## After\n"
        replaced = replace_results(document, "new table\n")
        self.assertEqual(replaced, f"intro\n\n{BEGIN_MARKER}\n\nnew table\n\n{END_MARKER}\n\n## After\n")
        self.assertEqual(replace_results(replaced, "new table\n"), replaced)

    def test_appends_markers(self) -> None:
        self.assertEqual(
            replace_results("intro\n", "table"), f"intro\n\n{BEGIN_MARKER}\n\ntable\n\n{END_MARKER}\n"
        )


class FakePromptTests(SynchronousTestCase):
    def test_prompt(self) -> None:
        self.assertEqual(
            fake.prompt(size=10, chunks=2, stamp=True, count=True),
            "bench bench:size=10 bench:chunks=2 bench:stamp=1 bench:count=1",
        )

    def test_stamp_reader(self) -> None:
        """Each stamped line is timed by the arrival of its last byte."""
        reader = StampReader()
        reader(b'data: {"text":"@1000', 5000)
        reader(b'@"}\n\ndata: {"text":"@3000@"}\n', 7000)
        self.assertEqual(reader.delays, [6000 / 1e9, 4000 / 1e9])
