"""The docs site: `mkdocs build --strict` succeeds (broken links and anchors fail it),
the generated reference pages hold every field and every option of the code, and
headless Chromium renders the home page, a tutorial and the generated results page
(their headings in the DOM, screenshots that are not blank). Needs the `docs` extra
(skips, saying so, without it; `.ci/run` installs it and sets HARNESS_REQUIRE_DOCS=1)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
HAVE_MKDOCS = importlib.util.find_spec("mkdocs") is not None
if not HAVE_MKDOCS and os.environ.get("HARNESS_REQUIRE_DOCS"):
    raise RuntimeError("HARNESS_REQUIRE_DOCS is set but MkDocs is not installed: "
                       "pip install -c constraints.txt -e '.[docs]'")
needs_mkdocs = pytest.mark.skipif(not HAVE_MKDOCS, reason="MkDocs is not installed "
                                  "(pip install -c constraints.txt -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built as CI builds it, into a temporary folder (not --quiet: MkDocs counts
    the warnings that --strict turns into failures only when it logs them)."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@needs_mkdocs
def test_the_site_builds_strictly_with_every_page(site) -> None:
    for page in ("index.html", "getting-started/index.html", "tutorials/logistic/index.html",
                 "tutorials/grid_rl/index.html", "tutorials/ptb_lstm/index.html",
                 "tutorials/glue_bert/index.html", "guides/method-plugin/index.html",
                 "guides/task-plugin/index.html", "guides/cluster/index.html",
                 "guides/ci-checks/index.html", "results/index.html", "guarantees/index.html",
                 "reference/spec/index.html", "reference/commands/index.html",
                 "reference/api/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    assert not (site / "transcribed").exists() and not (site / "hooks.py").exists()
    api = (site / "reference/api/index.html").read_text(encoding="utf-8")
    # the contracts, from their docstrings
    assert "crosstalk_cross_entropy" in api and "CellRequest" in api
    assert "stale_correction" in api and "register_method" in api


@needs_mkdocs
def test_a_broken_link_fails_the_build(tmp_path) -> None:
    """--strict is what makes a broken link fatal: a copy of the docs with one bad link."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs",
                    ignore=shutil.ignore_patterns("pending"))
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    for name in ("CHANGELOG.md", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "reported").mkdir()
    shutil.copy(ROOT / "reported" / "README.md", tmp_path / "reported" / "README.md")
    page = tmp_path / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(tmp_path / "site")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


PAGES = {  # page: (text its DOM must hold, a word of its table or body)
    "index.html": ("imm-harness", "What is in this site"),
    "tutorials/logistic/index.html": ("Tutorial: the logistic toy (Figure 1)",
                                      "data-equivalent gain"),
    "results/index.html": ("Measured results", "Leaderboard: median of each source"),
}


@needs_mkdocs
@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install -y "
                    "chromium, or set $CHROMIUM)")
@pytest.mark.parametrize("page", list(PAGES))
def test_chromium_renders_the_page(site, tmp_path, page) -> None:
    import matplotlib.image

    heading, body = PAGES[page]
    url = (site / page).as_uri()
    dom = _chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h1" in dom.stdout and heading in dom.stdout, dom.stdout[:2000]
    assert body in dom.stdout
    assert 'class="md-nav' in dom.stdout  # the theme's navigation was rendered
    shot = tmp_path / (page.replace("/", "_") + ".png")
    out = ROOT / "docs-screenshots"
    done = _chromium(["--window-size=1280,1000", f"--screenshot={shot}", url], tmp_path)
    assert shot.is_file(), done.stderr[-2000:]
    pixels = matplotlib.image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (1000, 1280)
    ink = (pixels < 0.9).any(-1)
    assert ink.mean() > 0.02, f"only {ink.mean():.2%} of the pixels are not white"
    header = pixels[:40].reshape(-1, 3).mean(0)  # the theme's indigo header bar
    assert header[2] > header[0] + 0.1, f"no coloured header bar: {header}"
    if os.environ.get("HARNESS_KEEP_SCREENSHOTS"):
        out.mkdir(exist_ok=True)
        shutil.copy(shot, out / shot.name)
