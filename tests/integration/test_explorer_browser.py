"""
The C{/docs} explorer in a real headless Chromium (docs/design/decisions.md#d8-offline-docs).

Each test runs a real clinvk server with the fake CLIs (L{SDKServerTestCase})
and a headless Chromium driven over the DevTools protocol.  The browser is
spoken to through C{--remote-debugging-pipe}: commands go to the browser's
file descriptor 3 and replies and events come back on its descriptor 4,
each a JSON message ended by a NUL byte.  Both pipes are ordinary Twisted
child-process pipes, so the whole conversation runs on the reactor, every
wait is an event (a reply, a DevTools event, a DOM mutation observed in the
page) and every wait is bounded by a timeout.  No driver package is needed,
only the browser.

While a page is open every console message of level error, every uncaught
page error and the URL of every request the page makes are recorded; each
test ends by asserting that there was no error and that every request went
to the server itself.  The browser resolves no host name but the server's
address, so nothing can leave the loopback interface even by mistake.

The tests are skipped only when no Chromium is installed (Debian: C{apt-get
install chromium}), and fail instead where C{CLINVK_REQUIRE_SYSTEM_TOOLS=1}
says it must be (CI).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from tests.integration._processes import TIMEOUT, get_json, post_json, reactor, require_tool
from tests.integration._sdk_server import SDKServerTestCase

# Debian and most distributions call it chromium; some older ones chromium-browser.
CHROMIUM_NAMES = ("chromium", "chromium-browser")

# How long the page may take to reach a state the test waits for (its own
# timer inside the page; the reactor's TIMEOUT is the backstop).
PAGE_WAIT_MS = int((TIMEOUT - 5) * 1000)

# The keys of an OpenAPI path item that are operations; the others
# (parameters, summary, servers, ...) are not.
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

# The descriptors of --remote-debugging-pipe, seen from the browser.
COMMANDS_FD = 3
REPLIES_FD = 4


class DevToolsError(Exception):
    """The browser answered a DevTools command with an error."""


class BrowserProcess(ProcessProtocol):
    """
    A Chromium started with C{--remote-debugging-pipe}: sends DevTools
    commands and routes the replies and events that come back.

    @ivar output: What the browser wrote to stdout and stderr, for failure
        messages.
    @ivar ended: Fires with C{None} once the browser has exited.
    @ivar listeners: Called with C{(session_id, method, params)} for every
        event.
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[None] = Deferred()
        self.listeners: list[Callable[[str | None, str, dict[str, Any]], None]] = []
        self._buffer = b""
        self._last_id = 0
        self._pending: dict[int, Deferred[dict[str, Any]]] = {}

    def command(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Deferred[dict[str, Any]]:
        """Send one DevTools command; fire with its result."""
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        reply: Deferred[dict[str, Any]] = Deferred()
        self._pending[self._last_id] = reply
        assert self.transport is not None
        self.transport.writeToChild(COMMANDS_FD, json.dumps(message).encode("utf-8") + b"\0")
        return reply.addTimeout(TIMEOUT, reactor)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != REPLIES_FD:
            self.output += data
            return
        self._buffer += data
        *messages, self._buffer = self._buffer.split(b"\0")
        for raw in messages:
            self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            reply = self._pending.pop(message["id"], None)
            if reply is None:
                return
            if "error" in message:
                reply.errback(DevToolsError(message["error"]))
            else:
                reply.callback(message.get("result", {}))
            return
        for listener in list(self.listeners):
            listener(message.get("sessionId"), message["method"], message.get("params", {}))

    def processEnded(self, reason: Failure) -> None:
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply.errback(
                DevToolsError(f"the browser exited: {self.output.decode('utf-8', 'replace')[-2000:]}")
            )
        self.ended.callback(None)


class Page:
    """
    One browser tab, attached through a flat DevTools session, and what it
    did: console errors, page errors and the URL of every request.
    """

    def __init__(self, browser: BrowserProcess, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self._awaited: list[tuple[str, Deferred[dict[str, Any]]]] = []
        self._replacements: dict[str, tuple[bytes, str]] = {}
        browser.listeners.append(self._event)

    def _event(self, session_id: str | None, method: str, params: dict[str, Any]) -> None:
        if session_id != self.session_id:
            return
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            self.console_errors.append(
                " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            # The browser's own messages: CSP violations, failed loads.
            entry = params["entry"]
            self.console_errors.append(f"{entry['source']}: {entry['text']} ({entry.get('url', '')})")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.page_errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Inspector.targetCrashed":
            self.page_errors.append("the page crashed")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Fetch.requestPaused":
            self._replace(params)
        for entry in list(self._awaited):
            if entry[0] == method:
                self._awaited.remove(entry)
                entry[1].callback(params)

    def command(self, method: str, params: dict[str, Any] | None = None) -> Deferred[dict[str, Any]]:
        return self.browser.command(method, params, self.session_id)

    async def replace_response(self, url: str, body: bytes, content_type: str) -> None:
        """
        From now on answer the page's requests for C{url} with C{body}
        ourselves, in place of the server.
        """
        self._replacements[url] = (body, content_type)
        patterns = [{"urlPattern": pattern, "requestStage": "Request"} for pattern in self._replacements]
        await self.command("Fetch.enable", {"patterns": patterns})

    def _replace(self, params: dict[str, Any]) -> None:
        url = params["request"]["url"]
        if url not in self._replacements:
            self.command("Fetch.continueRequest", {"requestId": params["requestId"]})
            return
        body, content_type = self._replacements[url]
        fulfilled = self.command(
            "Fetch.fulfillRequest",
            {
                "requestId": params["requestId"],
                "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": content_type}],
                "body": base64.b64encode(body).decode("ascii"),
            },
        )
        fulfilled.addErrback(lambda failure: self.page_errors.append(f"answering {url}: {failure.value}"))

    def next_event(self, method: str) -> Deferred[dict[str, Any]]:
        """Fire with the parameters of the next event C{method} of this page."""
        waiting: Deferred[dict[str, Any]] = Deferred()
        self._awaited.append((method, waiting))
        return waiting.addTimeout(TIMEOUT, reactor)

    async def open(self, url: str) -> None:
        """Navigate to C{url} and wait for its load event."""
        loaded = self.next_event("Page.loadEventFired")
        navigation = await self.command("Page.navigate", {"url": url})
        if "errorText" in navigation:
            raise DevToolsError(f"navigating to {url}: {navigation['errorText']}")
        await loaded

    async def evaluate(self, expression: str) -> Any:
        """The value of the JavaScript C{expression} (a promise is awaited)."""
        answer = await self.command(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise DevToolsError(details.get("exception", {}).get("description") or details["text"])
        return answer["result"].get("value")

    async def wait_until(self, condition: str) -> Any:
        """
        Wait until the JavaScript expression C{condition} is truthy, checking
        it again on every change of the document; return its value.
        """
        return await self.evaluate(
            f"""new Promise(function (resolve, reject) {{
                function check() {{ return ({condition}); }}
                var value = check();
                if (value) {{ resolve(value); return; }}
                var observer = new MutationObserver(function () {{
                    var value = check();
                    if (value) {{ observer.disconnect(); clearTimeout(timer); resolve(value); }}
                }});
                var timer = setTimeout(function () {{
                    observer.disconnect();
                    reject(new Error("timed out waiting for: " + {json.dumps(condition)}));
                }}, {PAGE_WAIT_MS});
                observer.observe(document, {{
                    subtree: true, childList: true, characterData: true, attributes: true
                }});
            }})"""
        )

    async def click(self, selector: str) -> None:
        """
        Click the middle of the element C{selector} with the mouse, as a user
        does: the element must be the one on top at that point.
        """
        point = await self.evaluate(
            f"""(function () {{
                var target = document.querySelector({json.dumps(selector)});
                if (!target) throw new Error("no element " + {json.dumps(selector)});
                target.scrollIntoView({{block: "center"}});
                var box = target.getBoundingClientRect();
                var x = box.left + box.width / 2, y = box.top + box.height / 2;
                var hit = document.elementFromPoint(x, y);
                if (!hit || !target.contains(hit)) throw new Error({json.dumps(selector)} + " is covered");
                return {{x: x, y: y}};
            }})()"""
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.command(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": point["x"], "y": point["y"], "button": "left", "clickCount": 1},
            )

    async def type_into(self, selector: str, text: str) -> None:
        """Replace the text of the field C{selector} by typing C{text}."""
        await self.evaluate(
            f"""(function () {{
                var field = document.querySelector({json.dumps(selector)});
                if (!field) throw new Error("no element " + {json.dumps(selector)});
                field.focus();
                field.select();
            }})()"""
        )
        await self.command("Input.insertText", {"text": text})


class ExplorerBrowserTestCase(SDKServerTestCase):
    """
    A real server (L{SDKServerTestCase}) and a headless Chromium whose
    every host name but the server's address fails to resolve.
    """

    async def setUp(self) -> None:  # type: ignore[override] # trial waits for it
        # Skipped without Chromium, or failed where it is required (CI).
        chromium = require_tool(CHROMIUM_NAMES, "apt-get install chromium")
        await super().setUp()
        profile = FilePath(self.mktemp())
        profile.makedirs()
        arguments = [
            chromium,
            "--headless",
            # Tests run as root in CI containers, where the sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            # Without these Chromium reaches out to Google hosts on its own.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--password-store=basic",
            "--no-proxy-server",
            # Nothing but the server's address resolves: no test leaves loopback.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile.path}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        environment = {
            "HOME": profile.path,
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
        }
        self.browser = BrowserProcess()
        self.browser_transport = reactor.spawnProcess(
            self.browser,
            chromium,
            arguments,
            env=environment,
            path=profile.path,
            childFDs={0: "w", 1: "r", 2: "r", COMMANDS_FD: "w", REPLIES_FD: "r"},
        )
        self.addCleanup(self.close_browser)

    async def close_browser(self) -> None:
        """Ask the browser to close; kill it if it has not exited in time."""
        overdue = reactor.callLater(TIMEOUT, self._kill_browser)
        if not self.browser.ended.called:
            # It may exit before it replies: the reply does not matter, the exit does.
            self.browser.command("Browser.close").addErrback(lambda _: None)
        await self.browser.ended
        if overdue.active():
            overdue.cancel()

    def _kill_browser(self) -> None:
        try:
            self.browser_transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass

    async def new_page(self) -> Page:
        """A new tab, with console, page errors and network recorded."""
        target = await self.browser.command("Target.createTarget", {"url": "about:blank"})
        attached = await self.browser.command(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self.browser, attached["sessionId"])
        for domain in ("Page", "Runtime", "Network", "Log", "Inspector"):
            await page.command(f"{domain}.enable")
        return page

    async def open_explorer(self, document: Any = None) -> Page:
        """
        A page showing C{/docs}, once it has rendered its operations; given
        a C{document}, the page gets it in place of the server's
        C{/openapi.json}.
        """
        page = await self.new_page()
        if document is not None:
            await page.replace_response(
                f"{self.base_url}/openapi.json", json.dumps(document).encode("utf-8"), "application/json"
            )
        await page.open(f"{self.base_url}/docs")
        await page.wait_until("document.querySelector('#operations details.op')")
        return page

    async def send_from(self, page: Page, operation_id: str) -> tuple[str, str]:
        """
        Click the send button of the operation C{operation_id} and wait for
        the answer; return the status line and the body the page shows.
        """
        operation = f"#op-{operation_id}"
        await page.click(f"{operation} button.send")
        status, body = await page.wait_until(
            f"""(function () {{
                var status = document.querySelector({json.dumps(operation + " .response .status")});
                var button = document.querySelector({json.dumps(operation + " button.send")});
                if (!status || button.disabled || status.textContent.endsWith("…")) return null;
                return [status.textContent, document.querySelector({json.dumps(operation + " .response pre")}).textContent];
            }})()"""
        )
        return status, body

    async def listed_operations(self, page: Page) -> list[tuple[str, str]]:
        """The method and path of every operation the page lists, sorted."""
        listed = await page.evaluate(
            """Array.from(document.querySelectorAll("#operations details.op > summary")).map(function (summary) {
                return [summary.querySelector(".method").textContent, summary.querySelector(".path").textContent];
            })"""
        )
        return sorted((method, path) for method, path in listed)

    def assert_quiet_and_local(self, page: Page) -> None:
        """
        The page logged no error, threw nothing, and requested nothing but
        the server's own URLs (and C{data:} URLs).
        """
        origin = f"127.0.0.1:{self.port}"

        def local(url: str) -> bool:
            parts = urlsplit(url)
            return parts.scheme == "data" or (parts.scheme == "http" and parts.netloc == origin)

        self.assertTrue(page.requests)
        # One comparison, so that a failure shows all three at once.
        self.assertEqual(
            {
                "console errors": page.console_errors,
                "page errors": page.page_errors,
                f"requests to another host than {origin}": [url for url in page.requests if not local(url)],
            },
            {"console errors": [], "page errors": [], f"requests to another host than {origin}": []},
        )


class ExplorerTests(ExplorerBrowserTestCase):
    """The explorer against a server without API keys."""

    async def test_every_operation_listed(self) -> None:
        """
        Every operation of C{/openapi.json}, each path with each method, is
        listed once on the page, under the document's title and version.
        """
        page = await self.open_explorer()
        code, document = await get_json(f"{self.base_url}/openapi.json")
        self.assertEqual(code, 200)
        expected = sorted(
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if method in HTTP_METHODS
        )
        self.assertEqual(await self.listed_operations(page), expected)
        self.assertIn(("POST", "/api/v1/prompt"), expected)
        title = await page.evaluate("document.getElementById('title').textContent")
        self.assertEqual(title, f"{document['info']['title']} {document['info']['version']}")
        self.assert_quiet_and_local(page)
        # /docs and /openapi.json: the explorer needs nothing else.
        self.assertEqual(
            sorted({urlsplit(url).path for url in page.requests}),
            ["/docs", "/openapi.json"],
        )

    async def test_prompt_and_session_from_the_page(self) -> None:
        """
        A prompt sent with the page's own form runs the fake Claude and the
        page shows the server's answer; the session it reports is then
        fetched through the session operation's path parameter.
        """
        page = await self.open_explorer()
        await page.click("#op-executePrompt > summary")
        marker = "Hello from the explorer 7c1f"
        await page.type_into(
            "#op-executePrompt textarea", json.dumps({"backend": "claude", "prompt": marker}, indent=2)
        )
        status, body = await self.send_from(page, "executePrompt")

        self.assertTrue(status.startswith("200 OK"), status)
        self.assertIn("application/json", status)
        answer = json.loads(body)
        self.assertEqual(answer["backend"], "claude")
        self.assertEqual(answer["exit_code"], 0)
        self.assertEqual(answer["output"], f"claude answers: {marker}")
        self.assertEqual(self.run_with("claude", marker)["stdin"], marker)

        await page.click("#op-getSession > summary")
        await page.type_into("#op-getSession input[name=id]", answer["session_id"])
        status, body = await self.send_from(page, "getSession")
        self.assertTrue(status.startswith("200 OK"), status)
        self.assertEqual(json.loads(body)["id"], answer["session_id"])

        self.assert_quiet_and_local(page)
        self.assertIn(f"{self.base_url}/api/v1/prompt", page.requests)
        self.assertIn(f"{self.base_url}/api/v1/sessions/{answer['session_id']}", page.requests)

    async def test_path_level_fields(self) -> None:
        """
        With the session path's C{id} parameter declared once for the path
        (through a C{$ref}) and a path summary, the page lists the same
        operations (the path item's other fields are not operations) and
        its C{id} field fetches a real session.
        """
        _, document = await get_json(f"{self.base_url}/openapi.json")
        item = document["paths"]["/api/v1/sessions/{id}"]
        (parameter,) = item["get"].pop("parameters")
        item["delete"].pop("parameters")
        document["components"].setdefault("parameters", {})["SessionId"] = parameter
        item["parameters"] = [{"$ref": "#/components/parameters/SessionId"}]
        item["summary"] = "One session"
        code, created = await post_json(
            f"{self.base_url}/api/v1/prompt", {"backend": "claude", "prompt": "path-level fields"}
        )
        self.assertEqual(code, 200)

        page = await self.open_explorer(document)
        self.assertEqual(
            await self.listed_operations(page),
            sorted(
                (method.upper(), path)
                for path, operations in document["paths"].items()
                for method in operations
                if method in HTTP_METHODS
            ),
        )
        await page.click("#op-getSession > summary")
        await page.type_into("#op-getSession input[name=id]", created["session_id"])
        status, body = await self.send_from(page, "getSession")
        self.assertTrue(status.startswith("200 OK"), status)
        self.assertEqual(json.loads(body)["id"], created["session_id"])
        self.assert_quiet_and_local(page)


class KeyedExplorerTests(ExplorerBrowserTestCase):
    """The explorer against a server with API keys (docs/design/http.md#api-keys)."""

    server_environment = {"CLINVK_API_KEYS": "k1,k2"}

    async def test_key_from_the_page(self) -> None:
        """
        The page and the document load without a key; a request sent with
        the key typed into the page's key field is accepted, where the same
        request without a key is refused.
        """
        refused, _ = await get_json(f"{self.base_url}/api/v1/backends")
        self.assertEqual(refused, 401)

        page = await self.open_explorer()
        await page.type_into("#api-key", "k2")
        await page.click("#op-listBackends > summary")
        status, body = await self.send_from(page, "listBackends")
        self.assertTrue(status.startswith("200 OK"), status)
        self.assertIn("claude", [backend["name"] for backend in json.loads(body)["backends"]])
        self.assert_quiet_and_local(page)
