"""The report in a real browser: headless Chromium at 1,400 px, nothing wider than the window, every image loads.

Needs Playwright for Python (``pip install '.[browser]'``) and a Chromium (Debian's ``apt-get install
chromium``; Playwright's own browser download is not used).  Skips with the reason when either is
missing, except with ``OBSDB_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

WIDTH = 1400
@pytest.fixture(scope="module")
def demo_report(tmp_path_factory, simulated_nights):
    """A simulated night through the whole pipeline (qa, groups, align, render), then its report."""
    from obsdb.catalog.db import database_url, upgrade
    from obsdb.api import Catalog
    from obsdb.report.build import build_report

    base = tmp_path_factory.mktemp("browser")
    simulated_nights.copy(base / "night", seed=5, size=256, n_frames=12)
    db = base / "obsdb.sqlite"
    upgrade(database_url(str(db)))
    catalog = Catalog.open(str(db))
    catalog.ingest([base / "night"])
    catalog.qa()
    catalog.align()
    catalog.render(base / "rendered", stack="median")
    # A long file path and a long manual reason: what used to widen the page.
    number = catalog.report_facts()["records"][1]["number"]
    catalog.tag(str(number), "tracking-slight", author="tester",
                reason="stars doubled on inspection; " + "very-long-unbroken-word-" * 12)
    result = build_report(catalog, base / "report")
    catalog.close()
    return result.index_path


def _check_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    # Lazy images below the fold: scroll them all into view, then wait for each.
    page.evaluate("""async () => {
        for (const img of document.images) { img.loading = "eager"; img.scrollIntoView(); }
        await Promise.all([...document.images].map(img => img.complete ? null :
            new Promise(done => { img.onload = img.onerror = done; })));
        window.scrollTo(0, 0);
    }""")
    broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.getAttribute('src'))")
    assert broken == [], f"{url}: images that did not load: {broken}"
    width = page.evaluate("Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)")
    assert width <= WIDTH, f"{url}: the page is {width} px wide in a {WIDTH} px window"
    wide = page.evaluate(f"""[...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > {WIDTH} + 0.5)
        .slice(0, 5).map(e => e.tagName + '.' + e.className)""")
    assert wide == [], f"{url}: elements beyond the window's right edge: {wide}"


def test_report_fits_1400_px_and_every_image_loads(browser, demo_report):
    import re

    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    try:
        _check_page(page, demo_report.as_uri())
        assert page.evaluate("document.images.length") > 10
        # A few frames' pages too: the first, a rejected one, the last.
        raw = demo_report.read_text(encoding="utf-8")
        pages = list(dict.fromkeys(re.findall(r'href="(frames/[^"]+\.html)"', raw)))
        assert pages, "the report links no frame page"
        for rel in {pages[0], pages[len(pages) // 2], pages[-1]}:
            _check_page(page, (demo_report.parent / rel).as_uri())
    finally:
        page.close()
