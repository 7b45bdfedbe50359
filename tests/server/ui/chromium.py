"""Headless Chromium driven over the DevTools protocol, for the dashboard tests.

::

    with Browser.start() as browser:             # chromium --headless --remote-debugging-port=0
        page = browser.new_page(width=390, height=844)
        page.goto("http://127.0.0.1:7432/ui/")
        page.wait_for("document.querySelector('#streams td')")
        page.evaluate("document.title")          # a JSON value
        page.screenshot(path)                    # PNG of the viewport (full_page=True: all of it)
        page.errors                              # console errors and uncaught exceptions so far

Debian's ``chromium`` (``apt-get install chromium``); :func:`chromium_binary`
finds it, and the tests skip with a reason when there is none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from eventlog.closing import Closing
from tests.support import scaled, terminate

__all__ = ["Browser", "Page", "chromium_binary"]


def chromium_binary() -> str | None:
    """The path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One tab, over its own DevTools WebSocket."""

    def __init__(self, ws_url: str) -> None:
        self._stack = contextlib.ExitStack()
        self._ws: ClientConnection = self._stack.enter_context(connect(ws_url, max_size=64 << 20))
        self._ids = itertools.count(1)
        #: Console errors and uncaught exceptions, as text.
        self.errors: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def _note(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details["text"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            entry = params["entry"]
            self.errors.append(f"{entry['text']} {entry.get('url', '')}".strip())

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events meanwhile are noted)."""
        n = next(self._ids)
        self._ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=scaled(30)))
            if message.get("id") == n:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._note(message)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        """Navigate and wait for the document to have loaded."""
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, expression: str, timeout: float = 10.0) -> None:
        """Poll ``expression`` until it is truthy in JavaScript's sense."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if self.evaluate(f"Boolean({expression})"):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout} s: {expression}")
            time.sleep(0.05)

    def set_viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """Emulate a screen of ``width`` x ``height`` CSS pixels."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=mobile,
        )

    def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        """A PNG of the viewport (or the whole page) at ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self._stack.close()


class Browser(Closing):
    """A headless Chromium process with a throwaway profile."""

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.TemporaryDirectory(
            prefix="eventlog-chromium-",
            ignore_cleanup_errors=True,  # its helpers may still write
        )
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",  # tests run as root in CI
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port = self._devtools_port()
        self.pages: list[Page] = []

    def _devtools_port(self) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + scaled(30)
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            seen.append(line)
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                return int(match.group(1))
        self.close()
        raise RuntimeError("chromium did not start:\n" + "".join(seen))

    @classmethod
    def start(cls) -> Browser:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("no chromium binary")
        return cls(binary)

    def new_page(self, width: int = 1280, height: int = 800) -> Page:
        """A new tab with the given viewport."""
        import httpx

        info = httpx.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=scaled(10))
        page = Page(info.json()["webSocketDebuggerUrl"])
        page.set_viewport(width, height, mobile=width < 600)
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in self.pages:
            page.close()
        terminate(self.proc, scaled(10))
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._profile.cleanup()
