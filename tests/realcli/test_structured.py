"""
Structured output with the real CLIs (docs/design/structured-output.md):
claude's C{--json-schema} and codex's C{--output-schema}, each in the
middle of a conversation that its live process holds before and after.
The model server sees what each CLI makes of the schema: claude offers
the model a C{StructuredOutput} tool, codex sends a strict
C{json_schema} text format.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel

from clinvk.testing import model_server
from tests.integration._sdk_server import off_reactor
from tests.integration._server import Config
from tests.realcli._harness import MODELS, RealCLITestCase

HEADER = "x-clinvk-session-id"


class Pick(BaseModel):
    label: str
    n: int


class _StructuredMixin:
    backend: ClassVar[str]
    server_config: ClassVar[Config] = {"server": {"metrics_enabled": True}}

    def structured_reply(self) -> model_server.Reply:
        """What the model answers the structured turn with, the CLI's way."""
        raise NotImplementedError

    def assert_schema_sent(self, body: Any) -> None:
        """The model request of the structured turn carried Pick's schema."""
        raise NotImplementedError

    @off_reactor
    def test_structured_turn(self: Any) -> None:
        """
        A plain turn, a structured turn (parsed by the SDK) and a plain turn:
        one clinvk session, the structured one resuming the CLI's session,
        and the model saw the whole transcript each time.
        """
        self.model.script(
            self.backend, model_server.text("Seven."), self.structured_reply(), model_server.text("Done.")
        )
        chat = self.openai_client().chat.completions.with_raw_response
        model = MODELS[self.backend]
        messages: list[Any] = [{"role": "user", "content": "Pick a number"}]
        first = chat.create(model=model, messages=messages)
        self.assertEqual(first.parse().choices[0].message.content, "Seven.")
        messages += [
            {"role": "assistant", "content": "Seven."},
            {"role": "user", "content": "Label it"},
        ]
        structured = chat.parse(model=model, messages=messages, response_format=Pick)
        reply = structured.parse().choices[0].message
        self.assertEqual(reply.parsed, Pick(label="seven", n=7))
        messages += [{"role": "assistant", "content": reply.content}, {"role": "user", "content": "Thanks"}]
        last = chat.create(model=model, messages=messages)
        self.assertEqual(last.parse().choices[0].message.content, "Done.")
        self.assertEqual(len({raw.headers[HEADER] for raw in (first, structured, last)}), 1)
        turns = self.model.turns(self.backend)
        asked = next(turn for turn in turns if any("Label it" in text for text in turn.user_texts()))
        self.assert_schema_sent(asked.body)
        self.assertIn("Seven.", json.dumps(asked.body))
        final = json.dumps(turns[-1].body)
        for said in ("Pick a number", "Label it", "Thanks"):
            self.assertIn(said, final)
        self.assertNotIn("[Previous response", final)


class ClaudeStructuredTests(_StructuredMixin, RealCLITestCase):
    backend = "claude"

    def structured_reply(self) -> model_server.Reply:
        return model_server.tool_call("StructuredOutput", {"label": "seven", "n": 7})

    def assert_schema_sent(self, body: Any) -> None:
        [tool] = [tool for tool in body.get("tools") or [] if tool.get("name") == "StructuredOutput"]
        schema = tool["input_schema"]
        self.assertEqual(
            (sorted(schema["properties"]), sorted(schema["required"])), (["label", "n"], ["label", "n"])
        )


class CodexStructuredTests(_StructuredMixin, RealCLITestCase):
    backend = "codex"

    def structured_reply(self) -> model_server.Reply:
        return model_server.text('{"label": "seven", "n": 7}')

    def assert_schema_sent(self, body: Any) -> None:
        text_format = body["text"]["format"]
        self.assertEqual((text_format["type"], text_format["strict"]), ("json_schema", True))
        self.assertEqual(text_format["schema"]["required"], ["label", "n"])
