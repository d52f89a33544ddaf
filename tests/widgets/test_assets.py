"""The banner's files: shipped, within the size budget, and free of markup injection."""

from __future__ import annotations

import gzip
import re

from consentgate.widgets import BannerAssets

#: JS and CSS together, gzip-compressed, as served: issue budget "≤ 8 KB".
BUDGET_BYTES = 8 * 1024


def test_banner_js_and_css_fit_the_size_budget() -> None:
    assets = BannerAssets()
    sizes = {name: len(asset.gzipped) for name, asset in assets.files.items()}
    assert set(sizes) == {"banner.js", "banner.css"}
    total = sum(sizes.values())
    assert total <= BUDGET_BYTES, (
        f"banner is {total} bytes gzipped ({sizes}); budget {BUDGET_BYTES}"
    )


def test_served_gzip_matches_the_file() -> None:
    for asset in BannerAssets().files.values():
        assert gzip.decompress(asset.gzipped) == asset.content


def test_banner_never_parses_texts_as_markup() -> None:
    """Texts come from operators' settings: the banner sets them as text, never as HTML."""
    source = BannerAssets().files["banner.js"].content.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink
    # One module, no imports: nothing else to fetch before the banner can show.
    assert not re.search(r"^\s*import\s", source, re.M)
