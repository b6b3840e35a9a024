"""
A small Twisted web application that embeds clinvk next to its own pages.

    /                 the application's own page
    /ask?q=...        one answer, from clinvk called directly (no HTTP)
    /stream?q=...     the answer as it is produced, also called directly
    /clinvk/...       every clinvk API, e.g. /clinvk/openai/v1/chat/completions

Run it with ``python app.py --port 8000``; stop it with Ctrl+C.
"""

import argparse
import os

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import react
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from clinvk.embed import Clinvk, NotRunning, RunRequest, load_config


class Home(Resource):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"Ask me with /ask?q=..., or use the APIs under /clinvk/\n"


def question_of(request):
    return request.args.get(b"q", [b""])[0].decode("utf-8")


def failed(reason, request):
    """Answer a failure of clinvk (not running, say), unless the client has gone."""
    if reason.check(CancelledError):
        return  # the client went away, and cancelling stopped the CLI
    if not request.startedWriting:
        request.setResponseCode(503 if reason.check(NotRunning) else 500)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.write(reason.getErrorMessage().encode("utf-8") + b"\n")
    request.finish()


class Ask(Resource):
    """Answer with one prompt run to completion."""

    isLeaf = True

    def __init__(self, clinvk):
        super().__init__()
        self.clinvk = clinvk

    def render_GET(self, request):
        running = self.clinvk.prompt(
            RunRequest(backend="claude", prompt=question_of(request), ephemeral=True)
        )

        def answered(outcome):
            if not outcome.succeeded:
                request.setResponseCode(502)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            request.write((outcome.output if outcome.succeeded else outcome.error).encode("utf-8") + b"\n")
            request.finish()

        running.addCallbacks(answered, failed, errbackArgs=(request,))
        # If the client goes away, cancelling stops the CLI.
        request.notifyFinish().addErrback(lambda _: running.cancel())
        return NOT_DONE_YET


class Stream(Resource):
    """Send the answer's text as the CLI produces it."""

    isLeaf = True

    def __init__(self, clinvk):
        super().__init__()
        self.clinvk = clinvk

    def render_GET(self, request):
        Deferred.fromCoroutine(self.stream(request)).addErrback(failed, request)
        return NOT_DONE_YET

    async def stream(self, request):
        events = await self.clinvk.stream(
            RunRequest(backend="claude", prompt=question_of(request), ephemeral=True)
        )
        # If the client goes away, cancelling stops the CLI.
        request.notifyFinish().addErrback(lambda _: events.cancel())
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        partial = False
        async for event in events:
            if event.type != "message":
                continue
            # Claude streams partial messages, then the whole message again.
            if event.content.get("is_partial"):
                partial = True
            elif partial:
                continue
            request.write(event.content["text"].encode("utf-8"))
        if not events.cancelled:
            request.write(b"\n")
            request.finish()


async def main(reactor, port, config_file):
    clinvk = Clinvk.build(reactor, load_config(config_file, os.environ))

    root = Resource()
    root.putChild(b"", Home())
    root.putChild(b"ask", Ask(clinvk))
    root.putChild(b"stream", Stream(clinvk))
    root.putChild(b"clinvk", clinvk.resource)

    # clinvk's service runs with the application's own services; stopping
    # it ends every CLI that is still running.
    services = MultiService()
    clinvk.service.setServiceParent(services)
    services.startService()
    reactor.addSystemEventTrigger("before", "shutdown", services.stopService)

    # A Site with clinvk's protections of requests as they arrive (body size
    # limit, read timeouts); a plain twisted.web Site(root) works too.
    site = clinvk.site(root)
    listening = await TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(site)
    print(f"Serving on http://127.0.0.1:{listening.getHost().port}/", flush=True)
    await Deferred()  # until Ctrl+C or SIGTERM stops the reactor


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", help="clinvk configuration file (default: ~/.clinvk/config.yaml)")
    arguments = parser.parse_args()
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, arguments.port, arguments.config)))
