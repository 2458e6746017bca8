"""Headless Chromium (Debian's package, scripts/install_browser.sh) on the real UI and on the marketer's report.

Screenshots are saved under the test's temp folder (pytest prints it with -v; look at them when a test fails).
Plain `chromium --headless --screenshot/--dump-dom` is enough: the pages only need to load, nothing is clicked.
`--virtual-time-budget` lets the single-page app finish its GraphQL requests before the capture.
"""

from __future__ import annotations

import html.parser
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install_browser.sh"
WINDOW = (1600, 1000)
PAGE_SETTLE_MS = 20_000  # virtual time: the UI's queries usually answer within 2 s, this is the ceiling
# The lineage an analyst opens for a segment: everything upstream of customer_scores.
LINEAGE_PATH = "/assets/marts/customer_scores?view=lineage&lineageScope=upstream&lineageDepth=5"
FAILED_CHECK_PATH = "/assets/raw/orders?view=checks&checkDetail=gx_raw_orders"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed by the project's script when missing; skipped only if that cannot work."""
    if not CHROMIUM.exists():
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not CHROMIUM.exists():
            pytest.skip(f"Chromium is not installed and scripts/install_browser.sh failed: {result.stderr[-500:]}")
    return CHROMIUM


def headless(chromium: Path, profile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with no background traffic and a throw-away profile."""
    command = [
        str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
        f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def screenshot(chromium: Path, url: str, out: Path) -> Path:
    profile = out.parent / f"profile-{out.stem}"
    result = headless(chromium, profile, f"--virtual-time-budget={PAGE_SETTLE_MS}", f"--screenshot={out}", url)
    assert out.exists(), result.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return out


def dump_dom(chromium: Path, url: str, profile: Path) -> str:
    result = headless(chromium, profile, f"--virtual-time-budget={PAGE_SETTLE_MS}", "--dump-dom", url)
    shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def assert_real_screenshot(png: Path) -> None:
    """A PNG of the window's size with a rendered page in it, not a blank or error-coloured canvas."""
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.size == WINDOW
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 200, f"{png.name} looks blank ({len(colours)} colours)"
    assert png.stat().st_size > 30_000


class _CardCounter(html.parser.HTMLParser):
    """Segment cards in the report: <article class="card" data-segment=... data-kind=...>."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "article" and "card" in (attributes.get("class") or "").split():
            self.cards.append((attributes.get("data-kind") or "", attributes.get("data-segment") or ""))


def test_the_lineage_page_shows_the_segment_graph(chromium, webserver, tmp_path):
    png = screenshot(chromium, webserver + LINEAGE_PATH, tmp_path / "lineage_customer_scores.png")
    assert_real_screenshot(png)
    dom = dump_dom(chromium, webserver + LINEAGE_PATH, tmp_path / "profile-dom")
    for asset in ("customer_scores", "rfm_segments", "customer_features", "stg_orders", "landing_files"):
        assert asset in dom, f"{asset} is not drawn in the lineage graph"


def test_the_failed_check_page_shows_the_planted_defect(chromium, webserver, tmp_path):
    png = screenshot(chromium, webserver + FAILED_CHECK_PATH, tmp_path / "failed_check_gx_raw_orders.png")
    assert_real_screenshot(png)
    dom = dump_dom(chromium, webserver + FAILED_CHECK_PATH, tmp_path / "profile-dom")
    assert "gx_raw_orders" in dom
    assert "Failed" in dom
    assert "order_total" in dom  # the failed expectation is named on the page


def test_the_segment_report_renders_every_segment_card(chromium, operated, tmp_path):
    with duckdb.connect(str(operated.warehouse), read_only=True) as conn:
        expected = conn.execute("select segment_kind, name from marts.segment_cards").fetchall()
    assert len(expected) >= 6
    dom = dump_dom(chromium, operated.report.as_uri(), tmp_path / "profile-report")
    counter = _CardCounter()
    counter.feed(dom)
    assert len(counter.cards) == len(expected)
    assert {name for _, name in counter.cards} == {name for _, name in expected}
    png = screenshot(chromium, operated.report.as_uri(), tmp_path / "segment_report.png")
    assert_real_screenshot(png)
