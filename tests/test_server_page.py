"""The query page in headless Chromium: typed, validated, run, and every value shown as text.

Chromium is installed by ``scripts/services.sh start``; Playwright drives it
(``executable_path``: Playwright's own browser downloads are not used).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server_support import ServerProcess
from tests.servers import require_chromium

HOSTILE = "<img src=x onerror=alert(1)>"
T0 = 1_714_521_600_000
BROWSER_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

DOCUMENT: dict[str, Any] = {
    "data": [
        {"name": "views", "filters": [{"type": "eq", "key": "event_tag", "value": "view"}],
         "unique": ["user_id"], "breakdown": {"keys": ["user_id"], "n": 5},
         "series": {"bucket": "hour"}},
        {"name": HOSTILE, "filters": [{"type": "eq", "key": "event_tag", "value": "buy"}],
         "unique": ["user_id"]},
    ],
    "funnel": {"type": "exact_order", "order": ["views", HOSTILE], "match": ["user_id"]},
}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("page")) as running:
        events = []
        for i in range(40):
            user = [HOSTILE, "ana", "bo", "ü"][i % 4]
            tag = "view" if i % 3 else "buy"
            events.append({"ts": T0 + i * 400_000, "samplerate": i % 2 + 1,
                           "data": {"event_tag": tag, "user_id": user}})  # fmt: skip
        assert httpx.post(running.url + "/events", json={"events": events}).status_code == 200
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=binary, args=BROWSER_FLAGS)
        yield launched
        launched.close()


def opened(browser: Any, server: ServerProcess) -> tuple[Any, list[str]]:
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server.url + "/")
    return page, dialogs


@pytest.mark.servers
class TestPage:
    """What a user does on the page, checked against the API's own answers."""

    def test_type_run_and_read_the_table(self, browser: Any, server: ServerProcess) -> None:
        page, dialogs = opened(browser, server)
        page.click("#editor")
        page.keyboard.insert_text(json.dumps(DOCUMENT, indent=1))
        page.wait_for_selector("#validation.valid", timeout=30_000)
        page.click("#run")
        page.wait_for_selector("#run-status[data-done]", timeout=30_000)
        answer = httpx.post(server.url + "/query", json=DOCUMENT).json()
        cells = "r => Object.fromEntries([...r.cells].map(c => [c.dataset.column, c.textContent]))"
        rows = page.eval_on_selector_all("#sets-body tr", f"rows => rows.map({cells})")
        assert rows == [
            {"set": name, "count": f"{item['count']:,}",
             "weighted_count": f"{item['weighted_count']:,}",
             "unique:user_id": f"{item['unique']['user_id']:,}"}
            for name, item in answer["data"].items()
        ]  # fmt: skip
        steps = page.eval_on_selector_all(
            "#funnel-steps li", "items => items.map(i => [i.dataset.step, i.textContent])"
        )
        assert [name for name, _ in steps] == [s["step"] for s in answer["funnel"]]
        assert steps[1][1].endswith(
            f"{answer['funnel'][1]['count']} ({answer['funnel'][1]['conversion'] * 100:.1f}%)"
        )
        assert page.locator("svg.chart polyline").count() == 1
        assert page.locator("#breakdowns td", has_text=HOSTILE).count() == 1
        assert page.locator("img").count() == 0
        assert dialogs == []
        page.close()

    def test_errors_name_the_path_as_one_types(self, browser: Any, server: ServerProcess) -> None:
        page, _ = opened(browser, server)
        page.click("#editor")
        page.keyboard.insert_text(
            '{"data": [{"name": "x", "filters": [{"type": "like", "key": "a"}]}]}'
        )
        page.wait_for_selector("#validation.invalid", timeout=30_000)
        assert page.text_content("#validation").startswith("data[0].filters[0]")
        page.close()

    def test_autocomplete_offers_keys_and_values_as_text(
        self, browser: Any, server: ServerProcess
    ) -> None:
        page, dialogs = opened(browser, server)
        page.click("#editor")
        page.keyboard.insert_text('{"data": [{"name": "x", "filters": [{"type": "eq", "key": "us')
        page.wait_for_selector("#suggestions li", timeout=30_000)
        assert page.eval_on_selector_all(
            "#suggestions .text", "n => n.map(x => x.textContent)"
        ) == ["user_id"]
        page.keyboard.press("Tab")
        page.keyboard.insert_text('", "value": "')
        page.wait_for_selector("#suggestions li >> text=ana", timeout=30_000)
        offered = page.eval_on_selector_all("#suggestions .text", "n => n.map(x => x.textContent)")
        assert sorted(offered) == sorted([HOSTILE, "ana", "bo", "ü"])
        assert page.locator("img").count() == 0
        assert dialogs == []
        text = page.input_value("#editor")
        assert '"key": "user_id", "value": "' in text
        page.close()

    def test_stats_are_shown(self, browser: Any, server: ServerProcess) -> None:
        page, _ = opened(browser, server)
        from playwright.sync_api import expect

        # The page's policy forbids evaluating strings, so wait through a locator, not a function.
        expect(page.locator("[data-stat=events]")).to_have_text("40", timeout=30_000)
        page.close()

    def test_a_screenshot_for_the_readme(
        self, browser: Any, server: ServerProcess, tmp_path: Path
    ) -> None:
        page, _ = opened(browser, server)
        page.set_viewport_size({"width": 1280, "height": 860})
        page.click("#editor")
        page.keyboard.insert_text(
            json.dumps(
                {
                    **DOCUMENT,
                    "data": [DOCUMENT["data"][0], {**DOCUMENT["data"][1], "name": "buys"}],
                    "funnel": {**DOCUMENT["funnel"], "order": ["views", "buys"]},
                },
                indent=1,
            )
        )
        page.click("#run")
        page.wait_for_selector("#run-status[data-done]", timeout=30_000)
        # METRICSTREAM_PAGE_SCREENSHOT=docs/images/query-page.png keeps it for the README.
        shot = Path(os.environ.get("METRICSTREAM_PAGE_SCREENSHOT") or tmp_path / "page.png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        page.close()
