"""`report.html` of a SEER run: the figures beside their targets, and image grids a person can check by eye.

One self-contained HTML file (images inlined as PNG data URIs, no scripts, no network), written from what the
run measured: `results` is the run's results.json (every number in the page comes from it) and `examples` the items
to show, each with its texts, images and the oracle's verdicts (`eval.reprompt.compare_systems` records + images).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #0a7d28; font-weight: bold; } .fail { color: #b3261e; font-weight: bold; }
img.cell { image-rendering: pixelated; width: 96px; height: 96px; border: 1px solid #888; }
.text { font-family: ui-monospace, monospace; font-size: 12px; max-width: 28em; }
"""
SHOWN_SYSTEMS = ("naive", "zero_shot", "seer", "gold")


def image_uri(image: Image.Image | None) -> str:
    """A PNG data URI of `image` (an empty string for None)."""
    if image is None:
        return ""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return f'<td class="{"pass" if value else "fail"}">{"PASS" if value else "FAIL"}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>'
    if value is None:
        return "<td>-</td>"
    return f"<td>{html.escape(str(value))}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; floats get 3 decimals, booleans PASS/FAIL, None a dash, everything else is escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def example_rows(records: Sequence[Mapping[str, Any]], images: Mapping[str, Sequence[Image.Image | None]],
                 indices: Sequence[int]) -> str:  # fmt: skip
    """One row per shown item: prompt, instruction, then per system its text, image and the oracle's verdict."""
    header = "".join(f"<th>{name}</th>" for name in SHOWN_SYSTEMS if name in images)
    rows = []
    for i in indices:
        r = records[i]
        cells = [
            f'<td class="text"><b>{html.escape(r["id"])}</b><br>prompt: {html.escape(r["prompt"])}<br>'
            f'instruction: <b>{html.escape(r["instruction"])}</b><br>{r["category"]} / {r["difficulty"]} / '
            f"{r['split']}</td>"
        ]
        for name in SHOWN_SYSTEMS:
            if name not in images:
                continue
            s = r[name]
            verdict = '<span class="pass">pass</span>' if s["passed"] else '<span class="fail">fail</span>'
            uri = image_uri(images[name][i])
            img = f'<img class="cell" src="{uri}">' if uri else "<i>no image (did not parse)</i>"
            text = html.escape(s["text"]) if s["text"] is not None else "<i>malformed</i>"
            read = html.escape(s["read"]) if s.get("read") else "unreadable"
            think = f"<br><small>think: {html.escape(s['reasoning'])}</small>" if s.get("reasoning") else ""
            cells.append(
                f'<td class="text">{img}<br>{verdict}<br>{text}{think}<br><small>oracle read: {read}</small></td>'
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr><th>item</th>{header}</tr>{''.join(rows)}</table>"


def render_report(
    title: str,
    figures: Mapping[str, Mapping[str, Any]],
    sections: Sequence[tuple[str, str]],
    records: Sequence[Mapping[str, Any]],
    images: Mapping[str, Sequence[Image.Image | None]],
    shown: Sequence[int],
) -> str:
    """The whole page: the headline figures (value, target, pass), extra sections (title, HTML), example grids."""
    rows = [(name, f.get("value"), f.get("before"), f.get("target"), f.get("passed")) for name, f in figures.items()]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        "<h2>Figures</h2>",
        table(["figure", "value", "before SEER", "target", "met"], rows),
    ]
    for heading, body in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", body]
    parts += [
        "<h2>Examples</h2><p>Images of one item share their generator seed; verdicts are the oracle's.</p>",
        example_rows(records, images, shown),
        "</body></html>",
    ]
    return "\n".join(parts)
