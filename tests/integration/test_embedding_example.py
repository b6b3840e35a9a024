"""
The embedding example, C{docs/examples/embedding/app.py}, run as its
users run it: a Twisted web application with its own pages, clinvk
mounted at C{/clinvk}, and pages that call clinvk directly.

The application runs with the fake CLIs on its C{PATH}, like the server of
L{ServerTestCase}; afterwards no process of any fake may be left.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import openai

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from tests._docs import EXAMPLES
from tests.integration._processes import (
    TIMEOUT,
    alive,
    get_json,
    post_json,
    process_exit,
    python_command,
    reactor,
)
from tests.integration._server import ServerTestCase

EXAMPLE = EXAMPLES / "embedding" / "app.py"


class TextClient(Protocol):
    """
    A raw HTTP/1.0 C{GET} that collects the response as it arrives and
    tells when some text has arrived, so a test can act mid-response.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.received = b""
        self.closed: Deferred[None] = Deferred()
        self._waiting: list[tuple[bytes, Deferred[None]]] = []

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(f"GET {self.path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        for entry in list(self._waiting):
            text, arrived = entry
            if text in self.received:
                self._waiting.remove(entry)
                arrived.callback(None)

    def arrival_of(self, text: bytes) -> Deferred[None]:
        """Fire once C{text} has arrived."""
        arrived: Deferred[None] = Deferred()
        if text in self.received:
            arrived.callback(None)
        else:
            self._waiting.append((text, arrived))
        return arrived.addTimeout(TIMEOUT, reactor)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.closed.callback(None)


async def get_text(port: int, path: str) -> tuple[bytes, bytes]:
    """The head and body of C{GET path}, once the response is complete."""
    client = TextClient(path)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    await client.closed.addTimeout(TIMEOUT, reactor)
    head, _, body = client.received.partition(b"\r\n\r\n")
    return head, body


class EmbeddingExampleTests(ServerTestCase):
    """The example application, with one run at a time and no queue."""

    server_config = {"server": {"max_concurrent_runs": 1, "max_queued_runs": 0}}

    def server_command(self, config_file: str) -> list[str]:
        return python_command(str(EXAMPLE), "--port", "0", "--config", config_file)

    ready_path = "/"

    def started_pattern(self) -> str:
        return r"Serving on http://127\.0\.0\.1:(?P<port>\d+)/"

    def probed_pattern(self) -> None:
        # An embedding application does not look for the CLIs at start-up.
        return None

    async def test_own_page_and_direct_answer(self) -> None:
        """
        The application's own page is served, and C{/ask} answers with
        the CLI's answer, obtained without HTTP.
        """
        head, body = await get_text(self.port, "/")
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        self.assertIn(b"/clinvk/", body)

        head, body = await get_text(self.port, "/ask?q=" + quote("What is 2+2?"))
        self.assertIn(b" 200 ", head.split(b"\r\n")[0], body)
        self.assertEqual(body, b"claude answers: What is 2+2?\n")
        [record] = self.records_of("claude")
        self.assertEqual(record["stdin"], "What is 2+2?")

    async def test_direct_stream(self) -> None:
        """
        C{/stream} sends the answer's text once, from the partial messages
        of a CLI that streams it in pieces.
        """
        question = "Tell me a story\n#fake chunks=4"
        head, body = await get_text(self.port, "/stream?q=" + quote(question))
        self.assertIn(b" 200 ", head.split(b"\r\n")[0], body)
        self.assertEqual(body, b"claude answers: Tell me a story\n")

    async def test_mounted_apis(self) -> None:
        """
        Every clinvk API answers below C{/clinvk}: C{/health}, the native
        API, and the OpenAI API through the official SDK.
        """
        status, health = await get_json(self.url("/clinvk/health"))
        self.assertEqual(status, 200)
        self.assertIn(health["status"], ("ok", "degraded"))

        status, answer = await post_json(
            self.url("/clinvk/api/v1/prompt"), {"backend": "codex", "prompt": "Hello", "ephemeral": True}
        )
        self.assertEqual((status, answer["output"]), (200, "codex answers: Hello"), answer)

        # The SDK blocks: it runs in a thread, leaving the reactor free.
        completion = await deferToThread(
            lambda: (
                openai.OpenAI(
                    base_url=self.url("/clinvk/openai/v1"),
                    api_key="unused",
                    max_retries=0,
                    http_client=openai.DefaultHttpxClient(trust_env=False),
                )
                .chat.completions.create(model="gemini", messages=[{"role": "user", "content": "Hi there"}])
                .choices[0]
                .message.content
            )
        )
        self.assertEqual(completion, "gemini answers: Hi there")

    async def test_ask_disconnect(self) -> None:
        """
        When a client of C{/ask} goes away, its CLI is stopped, and the
        application logs no unhandled error.
        """
        client = TextClient("/ask?q=" + quote("Wait for it\n#fake hang"))
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        await self.eventually(lambda: len(self.records_of("claude")) == 1)
        [record] = self.records_of("claude")
        assert client.transport is not None
        client.transport.loseConnection()
        await process_exit(record["pid"])
        status, answer = await post_json(
            self.url("/clinvk/api/v1/prompt"), {"backend": "gemini", "prompt": "Next", "ephemeral": True}
        )
        self.assertEqual((status, answer["output"]), (200, "gemini answers: Next"), answer)
        self.assertNotIn("Unhandled error", self.server_output())

    async def test_shared_slots_and_cancellation(self) -> None:
        """
        A direct run and the HTTP APIs share the admission slots: while
        C{/stream} holds the only one, a native prompt is refused with 429.
        When the C{/stream} client goes away its CLI is stopped, the slot is
        free again, and the next prompt runs.
        """
        client = TextClient("/stream?q=" + quote("Keep going\n#fake hang"))
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        await client.arrival_of(b"claude answers: Keep going")
        [record] = self.records_of("claude")
        self.assertTrue(alive(record["pid"]))

        status, refused = await post_json(
            self.url("/clinvk/api/v1/prompt"), {"backend": "gemini", "prompt": "Me too", "ephemeral": True}
        )
        self.assertEqual(status, 429, refused)

        assert client.transport is not None
        client.transport.loseConnection()
        await process_exit(record["pid"])
        status, answer = await post_json(
            self.url("/clinvk/api/v1/prompt"), {"backend": "gemini", "prompt": "Me too", "ephemeral": True}
        )
        self.assertEqual((status, answer["output"]), (200, "gemini answers: Me too"), json.dumps(answer))
