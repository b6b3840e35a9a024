"""
Structured output (docs/design/structured-output.md) through the official
C{openai} SDK's own helpers (C{chat.completions.parse}, its stream,
C{responses.parse}) and LangChain's C{with_structured_output}: the real
server and the fake CLIs, which keep to a schema as the real ones do.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import openai
from pydantic import BaseModel

from tests.integration._sdk_server import LIVE_CONFIG, SDKServerTestCase, off_reactor
from tests.integration._server import Config

HEADER = "x-clinvk-session-id"

# The models of the backends whose CLIs keep to a schema.
HOLDING = {"claude": "claude", "codex": "gpt-4o"}


class Pick(BaseModel):
    """The answer's shape; the fakes answer the smallest value of it."""

    label: str
    n: int


class StructuredTests(SDKServerTestCase):
    """Live processes on: a structured turn runs cold and the conversation goes on."""

    server_config: ClassVar[Config] = LIVE_CONFIG

    def assert_schema_given(self, backend: str, marker: str) -> None:
        """The run of C{backend} for C{marker} was given Pick's schema the CLI's own way."""
        record = self.run_with(backend, marker)
        argv = record["argv"]
        if backend == "claude":
            schema = json.loads(argv[argv.index("--json-schema") + 1])
        else:
            # The fake read the file --output-schema named, as codex does.
            self.assertIn("--output-schema", argv)
            schema = record["schema"]
        self.assertEqual((schema["required"], schema["additionalProperties"]), (["label", "n"], False))

    @off_reactor
    def test_chat_parse(self) -> None:
        """
        C{chat.completions.parse} and its stream give a parsed C{Pick} on
        claude and codex; gemini refuses a schema with a 400 naming
        C{response_format}, and answers C{json_object} requests.
        """
        with self.openai_client() as client:
            for backend, model in HOLDING.items():
                prompt = f"Pick one for {backend}"
                completion = client.chat.completions.parse(
                    model=model, messages=[{"role": "user", "content": prompt}], response_format=Pick
                )
                parsed = completion.choices[0].message.parsed
                self.assertEqual(parsed, Pick(label=f"{backend} answers: {prompt}", n=1))
                self.assert_schema_given(backend, prompt)
                streamed = f"Stream one for {backend}"
                with client.chat.completions.stream(
                    model=model, messages=[{"role": "user", "content": streamed}], response_format=Pick
                ) as stream:
                    final = stream.get_final_completion()
                self.assertEqual(
                    final.choices[0].message.parsed, Pick(label=f"{backend} answers: {streamed}", n=1)
                )
            with self.assertRaises(openai.BadRequestError) as raised:
                client.chat.completions.parse(
                    model="gemini-2.5-pro", messages=[{"role": "user", "content": "x"}], response_format=Pick
                )
            self.assertEqual(raised.exception.param, "response_format")
            answer = client.chat.completions.create(
                model="gemini-2.5-pro",
                messages=[{"role": "user", "content": "Describe it"}],
                response_format={"type": "json_object"},
            )
            content = answer.choices[0].message.content or ""
            self.assertEqual(list(json.loads(content)), ["answer"])
            self.assertIn("Answer with one JSON object", self.run_with("gemini", "Describe it")["stdin"])

    @off_reactor
    def test_responses_parse(self) -> None:
        """C{responses.parse} with C{text_format} gives C{output_parsed} on claude and codex."""
        with self.openai_client() as client:
            for backend, model in HOLDING.items():
                prompt = f"Respond for {backend}"
                response = client.responses.parse(model=model, input=prompt, text_format=Pick)
                self.assertEqual(response.output_parsed, Pick(label=f"{backend} answers: {prompt}", n=1))
                self.assert_schema_given(backend, prompt)
            with self.assertRaises(openai.BadRequestError) as raised:
                client.responses.parse(model="gemini-2.5-pro", input="x", text_format=Pick)
            self.assertEqual(raised.exception.param, "text.format")

    @off_reactor
    def test_conversation(self) -> None:
        """
        A structured turn of a live conversation resumes its CLI session in
        a process of its own, sent only the new input; the next plain turn
        goes on in the same session.
        """
        sessions = set()
        with self.openai_client() as client:
            chat = client.chat.completions.with_raw_response
            messages: list[Any] = [{"role": "user", "content": "Think of a list"}]
            first = chat.create(model="claude", messages=messages)
            messages += [
                {"role": "assistant", "content": first.parse().choices[0].message.content},
                {"role": "user", "content": "Pick from it"},
            ]
            structured = chat.parse(model="claude", messages=messages, response_format=Pick)
            reply = structured.parse().choices[0].message
            self.assertEqual(reply.parsed, Pick(label="claude answers: Pick from it", n=1))
            messages += [
                {"role": "assistant", "content": reply.content},
                {"role": "user", "content": "Once more"},
            ]
            last = chat.create(model="claude", messages=messages)
            sessions = {raw.headers[HEADER] for raw in (first, structured, last)}
        self.assertEqual(len(sessions), 1, sessions)
        [cold] = [run for run in self.runs("claude") if not run.get("live")]
        self.assertEqual((cold["stdin"], cold["argv"].count("--resume")), ("Pick from it", 1))
        self.assertIn("--json-schema", cold["argv"])
        # The plain turns before and after it ran live, the later resuming the conversation.
        lives = sorted(
            (run["turns"], run["argv"].count("--resume")) for run in self.runs("claude") if run.get("live")
        )
        self.assertEqual(lives, [(["Once more"], 1), (["Think of a list"], 0)])

    @off_reactor
    def test_langchain(self) -> None:
        """LangChain's C{with_structured_output} (its default json_schema method) on claude and codex."""
        for backend, model in HOLDING.items():
            chat = self.langchain_chat(model)
            picked = chat.with_structured_output(Pick).invoke(f"Choose for {backend}")
            self.assertEqual(picked, Pick(label=f"{backend} answers: Choose for {backend}", n=1))
