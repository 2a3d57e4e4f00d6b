"""The status page in a real headless Chromium: it renders the live figures of /healthz.

Chromium is installed by ``scripts/services.sh start`` like the servers; under
CI a missing browser fails the test (`tests.servers.require_chromium`).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from metricstream.testing import FaultySink, InMemorySink

from .servers import require_chromium
from .support import sample, wait_until

BROWSER_TIMEOUT = 90.0
"""Seconds one Chromium run may take on a loaded machine."""


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with the flags that keep it off the network and quiet."""
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False
    )


class RenderedFigures(HTMLParser):
    """Collects what the page rendered: its state, the header figures and each sink's cells."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.header: dict[str, str] = {}
        self.sinks: dict[str, dict[str, str]] = {}
        self.window: dict[str, str] = {}
        self.lines: dict[tuple[str, str], int] = {}
        self._row: str | None = None
        self._legend: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "body":
            self.body = a
        elif a.get("id") in ("overall", "accepted"):
            self.header[a["id"]] = a.get("data-value", "")
        elif tag == "tr" and "data-sink" in a:
            self._row = a["data-sink"]
            self.sinks[self._row] = {}
        elif tag == "td" and self._row is not None and "data-field" in a:
            self.sinks[self._row][a["data-field"]] = a.get("data-value", "")
        elif tag == "span" and "data-sink" in a:
            self._legend = a["data-sink"]
        elif a.get("data-field", "").startswith("window-") and self._legend is not None:
            self.window[f"{self._legend} {a['data-field'][7:]}"] = a.get("data-value", "")
        elif tag == "polyline":
            self.lines[a["data-sink"], a["data-series"]] = int(a["data-points"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._row = None


def render(binary: str, profile: Path, url: str) -> RenderedFigures:
    """Load the page until it shows live figures (a few tries on a slow machine)."""
    figures = RenderedFigures()
    for budget in (3000, 6000, 12000):
        result = chromium(binary, profile, f"--virtual-time-budget={budget}", "--dump-dom", url)
        assert result.returncode == 0, result.stderr[-2000:]
        figures = RenderedFigures()
        figures.feed(result.stdout)
        if figures.body.get("data-state") == "live":
            break
    return figures


@pytest.mark.servers
class TestStatusPage:
    """The page loads, polls status.json and renders exactly what /healthz says."""

    def test_the_page_renders_the_figures_of_healthz(self, tmp_path: Path, make_streamer) -> None:
        binary = require_chromium()
        streamer = make_streamer(
            [InMemorySink("archive"), FaultySink(then=FaultySink.permanent(), name="warehouse")],
            batch_size=50,
        )
        host, port = streamer.serve_health()
        base = f"http://{host}:{port}"
        # The first history sample (nothing written yet) opens the chart's window.
        assert wait_until(lambda: len(get_json(base + "/status.json")[1]["history"]["times"]) > 0)
        streamer.send_many(sample(i) for i in range(300))
        assert streamer.flush(10)

        def sampled() -> bool:
            history = get_json(base + "/status.json")[1]["history"]
            return bool(history["sinks"]["archive"]["written"][-1] == 300)

        assert wait_until(sampled, 10)
        status, healthz = get_json(base + "/healthz")

        figures = render(binary, tmp_path / "profile", base + "/")

        assert figures.body["data-state"] == "live"
        assert int(figures.body["data-refreshes"]) >= 1
        assert status == 503
        assert figures.header == {
            "overall": "unhealthy",
            "accepted": str(healthz["events_accepted"]),
        }
        assert sorted(figures.sinks) == sorted(healthz["sinks"])
        for name, sink in healthz["sinks"].items():
            shown = figures.sinks[name]
            reasons = ",".join(f"{r}={n}" for r, n in sink["dropped_by_reason"].items() if n)
            expected_state = "healthy" if sink["healthy"] else "failing"
            assert shown["name"] == name
            assert shown["state"] == expected_state
            assert int(shown["written"]) == sink["events_written"]
            assert int(shown["pending"]) == sink["pending"]
            assert int(shown["dropped"]) == sink["events_dropped"]
            assert shown["drops"] == reasons
            assert int(shown["retries"]) == sink["retries"]
            assert shown["last_error"] == (sink["last_error"] or "")
            assert float(shown["rate"]) >= 0
        assert (figures.sinks["archive"]["written"], figures.sinks["warehouse"]["drops"]) == (
            "300",
            "rejected=300",
        )
        assert figures.sinks["warehouse"]["last_error"].startswith("PermanentSinkError")
        assert figures.window == {
            "archive written": "300",
            "archive dropped": "0",
            "warehouse written": "0",
            "warehouse dropped": "300",
        }
        assert figures.lines["archive", "written"] >= 1
        assert figures.lines["warehouse", "dropped"] >= 1

        screenshot = tmp_path / "status-page.png"
        result = chromium(
            binary,
            tmp_path / "profile",
            "--virtual-time-budget=3000",
            "--window-size=1200,800",
            f"--screenshot={screenshot}",
            base + "/",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert screenshot.stat().st_size > 10_000
