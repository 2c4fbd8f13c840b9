"""One self-contained HTML page from the Markdown pages: images inlined, no network.

The Markdown pages stay the source; this page is their rendering, one ``<section>`` per
page, with links between pages turned into in-page anchors and every PNG embedded as a
base64 data URI, so the single file can be mailed, attached to CI, or opened offline.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em;
       color: #1a1a1a; line-height: 1.45; }
nav { position: sticky; top: 0; background: #f4f6f8; padding: .5em 1em;
      border-bottom: 1px solid #ccd; }
nav a { margin-right: 1em; }
section { border-bottom: 2px solid #dde; padding-bottom: 1.5em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 90%; }
th, td { border: 1px solid #bbc; padding: .25em .6em; vertical-align: top; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; display: block; margin: .5em 0; }
code { background: #f2f2f2; padding: 0 .2em; }
"""

_LINK = re.compile(r'href="([\w.+-]+)\.md"')
_IMAGE = re.compile(r'src="([^"]+\.png)"')


def _data_uri(match: re.Match[str], base: Path) -> str:
    path = base / match.group(1)
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'src="data:image/png;base64,{encoded}"'


def html_page(title: str, pages: dict[str, str], base: Path) -> str:
    """``pages`` maps an anchor (the page's file stem) to its Markdown; images are under base."""
    nav = " ".join(f'<a href="#{html.escape(name)}">{html.escape(name)}</a>' for name in pages)
    sections = []
    for name, text in pages.items():
        body = markdown.markdown(text, extensions=["tables", "fenced_code"])
        body = _LINK.sub(lambda m: f'href="#{m.group(1)}"', body)
        body = _IMAGE.sub(lambda m: _data_uri(m, base), body)
        sections.append(f'<section id="{html.escape(name)}">\n{body}\n</section>')
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n<nav>{nav}</nav>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
