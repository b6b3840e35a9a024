"""
POST /api/v1/parallel, /chain and /compare (docs/design/native-api.md#parallel,
docs/design/native-api.md#chain, docs/design/native-api.md#compare).
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.web._native import NativeTestCase, claude_result


class ParallelTests(NativeTestCase):
    def tasks(self, *prompts: str, backend: str = "claude") -> list[dict[str, Any]]:
        return [{"backend": backend, "prompt": prompt} for prompt in prompts]

    def test_results_in_request_order(self) -> None:
        """results[i] is tasks[i] whatever order they finish in; no session ids."""
        pending = self.start("POST", "/api/v1/parallel", {"tasks": self.tasks("a", "b", "c")})
        children = list(self.reactor.spawned)
        self.assertEqual([c.stdin for c in children], [b"a", b"b", b"c"])
        for child, text in reversed(list(zip(children, "ABC", strict=True))):
            child.emit_stdout(claude_result(text))
            child.exit(0)
        answer = self.answer(pending)
        self.assertEqual([r["output"] for r in answer["results"]], ["A", "B", "C"])
        self.assertEqual((answer["total_tasks"], answer["completed"], answer["failed"]), (3, 3, 0))
        for result in answer["results"]:
            self.assertNotIn("session_id", result)
        self.assertTrue(answer["$schema"].endswith("/schemas/ParallelResponseBody.json"))
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 0)

    def test_tasks_are_ephemeral(self) -> None:
        """Every task is ephemeral, even one asking not to be."""
        tasks = [{"backend": "claude", "prompt": "x", "ephemeral": False, "metadata": {"a": "b"}}]
        answer = self.post("/api/v1/parallel", {"tasks": tasks, "dry_run": True})
        self.assertIn("--no-session-persistence", answer["results"][0]["output"])
        self.assertNotIn("session_id", answer["results"][0])

    def test_dry_run(self) -> None:
        answer = self.post("/api/v1/parallel", {"tasks": self.tasks("a", "b"), "dry_run": True})
        self.assertEqual(answer["completed"], 2)
        for result in answer["results"]:
            self.assertTrue(result["output"].startswith("Would execute:"))

    def test_default_concurrency(self) -> None:
        """max_parallel 0 or negative means parallel.max_workers (3 by default)."""
        for max_parallel in (0, -2):
            pending = self.start(
                "POST", "/api/v1/parallel", {"tasks": self.tasks(*"abcde"), "max_parallel": max_parallel}
            )
            self.assertEqual(len([c for c in self.reactor.spawned if not c.exited]), 3)
            self.assertEqual(len(self.reactor.spawned) % 5, 3)
            for _ in range(5):
                next(c for c in self.reactor.spawned if not c.exited).exit(0)
            self.assertEqual(self.answer(pending)["completed"], 5)

    def test_one_at_a_time(self) -> None:
        """max_parallel 1 runs tasks one after another."""
        pending = self.start("POST", "/api/v1/parallel", {"tasks": self.tasks("a", "b"), "max_parallel": 1})
        self.assertEqual(len(self.reactor.spawned), 1)
        self.reactor.advance(1)
        self.child().exit(0)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.reactor.advance(2)
        self.child().exit(0)
        self.assertEqual(self.answer(pending)["total_duration_ms"], 3000)

    def test_fail_fast(self) -> None:
        """
        A task exiting non-zero cancels the batch: the waiting ones are
        canceled (counted nowhere), the running ones are stopped (failed).
        """
        body = {"tasks": self.tasks("a", "b", "c", "d"), "max_parallel": 2, "fail_fast": True}
        pending = self.start("POST", "/api/v1/parallel", body)
        first, second = self.reactor.spawned
        first.exit(1)
        self.reactor.advance(5)
        answer = self.answer(pending)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertTrue(second.ended)
        results = answer["results"]
        self.assertEqual(results[0]["exit_code"], 1)
        self.assertEqual((results[1]["exit_code"], results[1]["error"]), (-1, "canceled"))
        for waiting in results[2:]:
            self.assertEqual(
                waiting, {"backend": "claude", "exit_code": -1, "duration_ms": 0, "error": "canceled"}
            )
        self.assertEqual((answer["completed"], answer["failed"]), (0, 2))

    def test_disconnect_cancels_the_batch(self) -> None:
        """A client that goes away stops the running tasks and starts no waiting one."""
        self.start("POST", "/api/v1/parallel", {"tasks": self.tasks(*"abcde"), "max_parallel": 2})
        self.disconnect()
        self.reactor.advance(5)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertTrue(all(child.ended for child in self.reactor.spawned))

    def test_shutting_down(self) -> None:
        """A server that takes no more runs answers 503, not 500, and starts nothing."""
        self.successResultOf(self.server.supervisor.stopService())
        for path, body in (
            ("/api/v1/parallel", {"tasks": self.tasks("a", "b")}),
            ("/api/v1/compare", {"backends": ["claude", "gemini"], "prompt": "x"}),
            ("/api/v1/prompt", {"backend": "claude", "prompt": "x"}),
        ):
            problem = self.problem(self.request("POST", path, body), 503)
            self.assertEqual(problem["detail"], "server is shutting down")
        self.assertEqual(self.reactor.spawned, [])

    def test_failure_alone(self) -> None:
        """Without fail_fast, an unknown backend fails alone and the status is 200."""
        answer = self.post(
            "/api/v1/parallel",
            {
                "tasks": [{"backend": "gpt", "prompt": "x"}, {"backend": "claude", "prompt": "y"}],
                "dry_run": True,
            },
        )
        self.assertEqual([r["exit_code"] for r in answer["results"]], [1, 0])
        self.assertEqual((answer["completed"], answer["failed"]), (1, 1))


class ChainTests(NativeTestCase):
    def step(self, prompt: str, **extra: Any) -> dict[str, Any]:
        return {"backend": "claude", "prompt": prompt, **extra}

    def run_chain(self, body: dict[str, Any], exits: list[tuple[int, str]]) -> dict[str, Any]:
        pending = self.start("POST", "/api/v1/chain", body)
        for code, text in exits:
            if text:
                self.child().emit_stdout(claude_result(text))
            self.child().exit(code)
        answer: dict[str, Any] = self.answer(pending)
        return answer

    def test_previous(self) -> None:
        """Every {{previous}} in step 2 is step 1's output; in step 1 it stays; {{input}} stays."""
        body = {
            "steps": [
                self.step("first {{previous}}"),
                self.step("{{previous}} and {{previous}} {{input}}", name="two"),
            ]
        }
        answer = self.run_chain(body, [(0, "ONE"), (0, "TWO")])
        first, second = self.reactor.spawned
        self.assertEqual(first.stdin, b"first {{previous}}")
        self.assertEqual(second.stdin, b"ONE and ONE {{input}}")
        self.assertEqual(answer["completed_steps"], 2)
        self.assertNotIn("failed_step", answer)
        self.assertEqual([r["step"] for r in answer["results"]], [1, 2])
        self.assertNotIn("name", answer["results"][0])
        self.assertEqual(answer["results"][1]["name"], "two")
        for result in answer["results"]:
            self.assertNotIn("session_id", result)

    def test_stop_on_failure(self) -> None:
        body = {"steps": [self.step("a"), self.step("b"), self.step("c")], "stop_on_failure": True}
        answer = self.run_chain(body, [(0, "A"), (1, "")])
        self.assertEqual((len(answer["results"]), answer["failed_step"]), (2, 2))
        self.assertEqual(len(self.reactor.spawned), 2)

    def test_last_failure_wins(self) -> None:
        body = {"steps": [self.step("a"), self.step("b"), self.step("c")]}
        answer = self.run_chain(body, [(1, ""), (0, "B"), (1, "")])
        self.assertEqual(
            (len(answer["results"]), answer["failed_step"], answer["completed_steps"]), (3, 3, 1)
        )

    def test_pass_working_dir(self) -> None:
        """A step without workdir runs where the previous one ran, transitively."""
        directory = os.path.realpath(self.mktemp())
        os.makedirs(directory)
        body = {
            "steps": [self.step("a", workdir=directory), self.step("b"), self.step("c")],
            "pass_working_dir": True,
        }
        self.run_chain(body, [(0, "A"), (0, "B"), (0, "C")])
        self.assertEqual([c.path for c in self.reactor.spawned], [directory] * 3)

    def test_dry_run(self) -> None:
        """Step 2's command line sees step 1's dry-run line in place of {{previous}}."""
        answer = self.post(
            "/api/v1/chain", {"steps": [self.step("a"), self.step("got: {{previous}}")], "dry_run": True}
        )
        first, second = answer["results"]
        self.assertEqual(second["output"].split("< stdin (")[1], f"{len('got: ' + first['output'])} bytes)")
        self.assertTrue(answer["$schema"].endswith("/schemas/ChainResponseBody.json"))


class CompareTests(NativeTestCase):
    def test_order_and_echo(self) -> None:
        """Results follow the request's order; prompt and backends are echoed; duplicates run twice."""
        for sequential in (False, True):
            body = {
                "backends": ["gemini", "claude", "claude"],
                "prompt": "x",
                "sequential": sequential,
                "model": "fast",
            }
            answer = self.post("/api/v1/compare", {**body, "dry_run": True})
            self.assertEqual(list(answer)[1:], ["prompt", "backends", "results", "total_duration_ms"])
            self.assertEqual((answer["prompt"], answer["backends"]), ("x", ["gemini", "claude", "claude"]))
            self.assertEqual([r["backend"] for r in answer["results"]], ["gemini", "claude", "claude"])
            for result in answer["results"]:
                self.assertEqual(result["model"], "fast")
                self.assertNotIn("session_id", result)

    def test_concurrent_and_sequential(self) -> None:
        """All at once, or one after another."""
        pending = self.start("POST", "/api/v1/compare", {"backends": ["claude", "gemini"], "prompt": "x"})
        self.assertEqual(len(self.reactor.spawned), 2)
        for child in list(self.reactor.spawned):
            child.exit(0)
        self.finish(pending)
        pending = self.start(
            "POST", "/api/v1/compare", {"backends": ["claude", "gemini"], "prompt": "x", "sequential": True}
        )
        self.assertEqual(len(self.reactor.spawned), 3)
        self.child().exit(0)
        self.assertEqual(len(self.reactor.spawned), 4)
        self.child().exit(0)
        self.assertEqual(self.finish(pending).code, 200)

    def test_unknown_backend(self) -> None:
        answer = self.post("/api/v1/compare", {"backends": ["gpt", "claude"], "prompt": "x", "dry_run": True})
        first, second = answer["results"]
        self.assertEqual((first["exit_code"], second["exit_code"]), (1, 0))
        self.assertNotIn("model", first)
