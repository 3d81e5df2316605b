import base64
import io
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from vqturb import plots
from vqturb.evaluation import report, video


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.stack = []
        self.errors = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in ("img", "meta", "source", "br", "hr", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def _decode(uri):
    head, _, data = uri.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), head[:40]
    return head[5:-7], base64.b64decode(data, validate=True)


@pytest.fixture
def page(tmp_path, rng):
    x = rng.standard_normal((2, 16, 16)).astype(np.float32)
    png = plots.plot_reconstructions(x, x * 0.9, tmp_path / "fig" / "rec.png")
    frames = video.render_frames({"g": x, "t": x}, min_panel=32)
    mp4 = video.write_video(tmp_path / "v" / "roll.mp4", frames, fps=2)
    gif = video.write_video(tmp_path / "v" / "roll2.mp4", frames, fps=2, codecs=())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.html").write_text("<html></html>")
    secs = [
        report.Section("Figures <&>", [report.Text("a < b & c"), report.Image(png, "recon")]),
        report.Section(
            "Videos",
            [
                report.Video(mp4, "embedded"),
                report.Video(gif, "gif"),
                report.Video(mp4, "linked", embed=False),
            ],
        ),
        report.Section(
            "Numbers",
            [
                report.Table.from_metrics(
                    {
                        "tokens": {"js": 0.01234, "per_scale": [{"js": 1e-5}, {"js": 0.5}]},
                        "curve": [1.0, 2.0, 3.0],
                        "n": 3,
                        "ok": True,
                    },
                    "metrics",
                    max_list=2,
                )
            ],
        ),
        report.Section(
            "Links",
            [
                report.Links(
                    [("other", tmp_path / "sub" / "other.html"), ("web", "https://example.org")]
                )
            ],
        ),
    ]
    out = report.build_report(
        tmp_path / "out" / "report.html", "Test <report>", secs, subtitle="sub"
    )
    return out, mp4


def test_report_parses_and_every_image_decodes(page):
    out, mp4 = page
    text = out.read_text()
    assert "http://" not in text.replace("https://example.org", "")  # nothing fetched from network
    assert "<script" not in text
    p = _Collect()
    p.feed(text)
    p.close()
    assert not p.errors and p.stack == []
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == 2  # the PNG figure and the GIF video
    for a in imgs:
        mime, data = _decode(a["src"])
        assert mime in ("image/png", "image/gif")
        with PILImage.open(io.BytesIO(data)) as im:
            im.load()
            assert im.size[0] > 0 and im.size[1] > 0
        assert a.get("alt")
    srcs = [a["src"] for t, a in p.tags if t == "source"]
    assert len(srcs) == 2
    if mp4.suffix == ".mp4":
        mime, data = _decode(srcs[0])
        assert mime == "video/mp4" and data[4:8] == b"ftyp"
    # the linked video and the other links resolve relative to the page
    assert (out.parent / srcs[1]).resolve() == mp4.resolve()
    hrefs = [a["href"] for t, a in p.tags if t == "a"]
    assert "../sub/other.html" in hrefs and "https://example.org" in hrefs
    ids = {a["id"] for t, a in p.tags if "id" in a}
    for h in hrefs:
        if h.startswith("#"):
            assert h[1:] in ids  # table of contents points at sections
        elif "://" not in h:
            assert (out.parent / h).exists(), h


def test_report_escapes_and_formats(page):
    out, _ = page
    text = out.read_text()
    assert "Test &lt;report&gt;" in text and "a &lt; b &amp; c" in text
    assert "tokens/per_scale/0/js" in text and "1.000e-05" in text
    assert "curve" not in text  # lists longer than max_list are left out
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_format_and_flatten():
    assert report.format_value(0.123456) == "0.1235"
    assert report.format_value(float("nan")) == "nan"
    assert report.format_value(7) == "7"
    rows = report.flatten_metrics({"a": {"b": 1.0, "c": [1, 2]}, "d": "x"}, max_list=2)
    assert rows == [("a/b", 1.0), ("a/c", [1, 2]), ("d", "x")]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def test_report_renders_in_headless_chromium(page, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip(
            "no Chromium/Chrome on this machine (looked for chromium, chromium-browser, "
            "google-chrome on PATH and /usr/bin/chromium); the HTML and data-URI checks "
            "above still ran"
        )
    out, _ = page
    probe = out.parent / "probe.html"
    # append a script that records each image's naturalWidth once the page has loaded
    probe.write_text(
        out.read_text().replace(
            "</body>",
            "<script>window.addEventListener('load',()=>{document.body.setAttribute('data-widths',"
            "Array.from(document.images).map(i=>i.complete?i.naturalWidth:-1).join(','));});"
            "</script></body>",
        )
    )
    res = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            Path(probe).as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    import re

    m = re.search(r'data-widths="([^"]*)"', res.stdout)
    assert m, "page did not finish loading"
    widths = [int(w) for w in m.group(1).split(",") if w]
    assert len(widths) == 2 and all(w > 0 for w in widths), widths
