"""Self-contained HTML reports: one file, figures embedded, opens offline in any browser.

A page is a title and a list of :class:`Section` s, each holding blocks (:class:`Text`,
:class:`Image`, :class:`Video`, :class:`Table`, :class:`Links`). PNG figures are embedded as
base64 data URIs; videos are embedded the same way when small (so the page can be mailed as one
file) and linked by a path relative to the page otherwise. No script, no stylesheet or font from
the network.

The same builder serves ``vqturb eval-nsp`` (one rollout report) and the demo pipeline (a
top-level page linking the VQ-VAE, codec and rollout reports)::

    build_report("out/report.html", "NSP rollouts", [
        Section("Token statistics", [Image("out/tokens.png", "per-scale histograms"),
                                     Table.from_metrics(m["tokens"]["overall"])]),
        Section("Videos", [Video("out/rollout_0.mp4")]),
    ])
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vqturb.utils.fileio import atomic_write_text

EMBED_VIDEO_LIMIT = 8 * 2**20  # videos up to this many bytes are embedded, larger ones linked

_MIME = {
    ".png": "image/png",
    ".gif": "image/gif",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text (escaped), or raw HTML when ``raw`` is set."""

    text: str  # the paragraph
    raw: bool = False  # insert ``text`` as HTML without escaping (trusted input only)


@dataclass(frozen=True)
class Image:
    """A figure embedded as a data URI."""

    path: str | os.PathLike  # PNG/GIF/JPEG file on disk
    caption: str = ""  # shown under the figure


@dataclass(frozen=True)
class Video:
    """A video (MP4 or GIF), embedded when small, else linked relative to the page."""

    path: str | os.PathLike  # the file written by vqturb.evaluation.video
    caption: str = ""  # shown under the video
    embed: bool | None = None  # None: embed when the file is under EMBED_VIDEO_LIMIT


@dataclass(frozen=True)
class Table:
    """A table of rows (cells are formatted with :func:`format_value`)."""

    rows: Sequence[Sequence[object]]  # one sequence of cells per row
    header: Sequence[str] | None = None  # column names
    caption: str = ""  # shown above the table

    @classmethod
    def from_metrics(cls, metrics: Mapping, caption: str = "", *, max_list: int = 0) -> Table:
        """Two-column table (name, value) of every scalar in a nested dict (``a/b/c`` names);
        lists of up to ``max_list`` numbers are shown inline, longer ones are left out."""
        return cls(flatten_metrics(metrics, max_list=max_list), ("metric", "value"), caption)


@dataclass(frozen=True)
class Links:
    """A list of links (to other reports, files), relative to the page when given as paths."""

    items: Sequence[tuple[str, str | os.PathLike]]  # (label, target path or URL)


Block = Text | Image | Video | Table | Links


@dataclass(frozen=True)
class Section:
    """A titled part of the page."""

    title: str  # heading, also the entry in the table of contents
    blocks: Sequence[Block] = field(default_factory=tuple)  # content, in order


def format_value(v: object) -> str:
    """Numbers with 4 significant digits (scientific when tiny or huge); others as ``str``."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(format_value(x) for x in v) + "]"
    return str(v)


def flatten_metrics(d: Mapping, prefix: str = "", *, max_list: int = 0) -> list[tuple[str, object]]:
    """``{"a": {"b": 1.0}, "c": [..]}`` -> ``[("a/b", 1.0), ...]``: scalars, plus lists of at most
    ``max_list`` scalars; lists of dicts are entered with their index (``per_scale/3/js``)."""
    rows: list[tuple[str, object]] = []
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            rows += flatten_metrics(v, f"{name}/", max_list=max_list)
        elif isinstance(v, (list, tuple)):
            if v and all(isinstance(x, Mapping) for x in v):
                for i, x in enumerate(v):
                    rows += flatten_metrics(x, f"{name}/{i}/", max_list=max_list)
            elif len(v) <= max_list and all(not isinstance(x, (list, tuple, Mapping)) for x in v):
                rows.append((name, list(v)))
        else:
            rows.append((name, v))
    return rows


def data_uri(path: str | os.PathLike) -> str:
    """``data:<mime>;base64,...`` for a file, the MIME type from its suffix."""
    path = Path(path)
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _href(target: str | os.PathLike, page_dir: Path) -> str:
    s = os.fspath(target)
    if "://" in s or s.startswith(("#", "mailto:")):
        return s
    rel = os.path.relpath(Path(s).resolve(), page_dir.resolve())
    return Path(rel).as_posix()


def _slug(title: str, i: int) -> str:
    keep = "".join(c.lower() if c.isalnum() else "-" for c in title).strip("-")
    return f"s{i}-{keep[:40]}"


def _render_block(b: Block, page_dir: Path) -> str:
    esc = html.escape
    if isinstance(b, Text):
        return b.text if b.raw else f"<p>{esc(b.text)}</p>"
    if isinstance(b, Image):
        cap = f"<figcaption>{esc(b.caption)}</figcaption>" if b.caption else ""
        alt = esc(b.caption or Path(b.path).name)
        return f'<figure><img src="{data_uri(b.path)}" alt="{alt}">{cap}</figure>'
    if isinstance(b, Video):
        p = Path(b.path)
        embed = b.embed if b.embed is not None else p.stat().st_size <= EMBED_VIDEO_LIMIT
        src = data_uri(p) if embed else esc(_href(p, page_dir))
        if p.suffix.lower() == ".gif":
            media = f'<img src="{src}" alt="{esc(b.caption or p.name)}">'
        else:
            mime = _MIME.get(p.suffix.lower(), "video/mp4")
            media = (
                f'<video controls loop muted playsinline preload="metadata">'
                f'<source src="{src}" type="{mime}">'
                f'<a href="{esc(_href(p, page_dir))}">{esc(p.name)}</a></video>'
            )
        link = f' <a href="{esc(_href(p, page_dir))}">(file)</a>'
        return f"<figure>{media}<figcaption>{esc(b.caption)}{link}</figcaption></figure>"
    if isinstance(b, Table):
        cap = f"<caption>{esc(b.caption)}</caption>" if b.caption else ""
        head = (
            "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in b.header) + "</tr></thead>"
            if b.header
            else ""
        )
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(format_value(c))}</td>" for c in row) + "</tr>"
            for row in b.rows
        )
        return f"<table>{cap}{head}<tbody>{body}</tbody></table>"
    if isinstance(b, Links):
        items = "".join(
            f'<li><a href="{esc(_href(t, page_dir))}">{esc(label)}</a></li>' for label, t in b.items
        )
        return f"<ul>{items}</ul>"
    raise TypeError(f"unknown report block {type(b).__name__}")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:0} nav ul{columns:2} figure{display:inline-block;margin:.5em 1em .5em 0;
vertical-align:top} img,video{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555;max-width:600px}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em} caption{text-align:left;font-weight:600;
padding:.3em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td:last-child{font-family:ui-monospace,monospace} tr:nth-child(even){background:#f6f6f6}
"""


def render_html(
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    page_dir: str | os.PathLike = ".",
) -> str:
    """The page as a string; relative links are computed from ``page_dir``."""
    page_dir = Path(page_dir)
    esc = html.escape
    toc = "".join(
        f'<li><a href="#{_slug(s.title, i)}">{esc(s.title)}</a></li>'
        for i, s in enumerate(sections)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="sub">{esc(subtitle)}</p>')
    if len(sections) > 1:
        parts.append(f"<nav><ul>{toc}</ul></nav>")
    for i, s in enumerate(sections):
        parts.append(f'<section id="{_slug(s.title, i)}"><h2>{esc(s.title)}</h2>')
        parts += [_render_block(b, page_dir) for b in s.blocks]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build_report(
    path: str | os.PathLike, title: str, sections: Sequence[Section], *, subtitle: str = ""
) -> Path:
    """Write a self-contained HTML page to ``path`` (atomically) and return the path."""
    path = Path(path)
    text = render_html(title, sections, subtitle=subtitle, page_dir=path.parent)
    atomic_write_text(path, text)
    return path
