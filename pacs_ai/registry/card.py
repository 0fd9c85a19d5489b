"""A bundle's model card, rendered for the models page.

The card is Markdown written by whoever trained the model: :func:`render_card` turns it into
HTML with markdown-it's CommonMark renderer with raw HTML disabled, so that HTML in a card
(from a third-party bundle, say) is shown as text and never runs in an engineer's browser.
"""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt

#: Where bundles keep their card: ours at the top, MONAI model-zoo bundles under ``docs/``.
CARD_FILES = ("MODEL_CARD.md", "docs/README.md")
CARD_MAX_BYTES = 1_000_000

_RENDERER = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def card_path(bundle_path: Path) -> Path | None:
    """The bundle's card file, or None when it has none."""
    for name in CARD_FILES:
        candidate = bundle_path / name
        if candidate.is_file():
            return candidate
    return None


def render_card(bundle_path: Path) -> str | None:
    """The bundle's card as safe HTML, or None when there is no (readable) card."""
    path = card_path(bundle_path)
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            text = handle.read(CARD_MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return None
    return str(_RENDERER.render(text))
