"""End to end: the HTML report of a real (tiny) sweep, opened in headless Chromium.

Every plot ``<img>`` must decode and be visible (naturalWidth > 0, rendered size > 0),
and the page must make no network request. A test copy of the page gets a small inline
script that writes each image's state into the DOM (read back with ``--dump-dom``); the
page's Content-Security-Policy is removed from that copy so that a reference to an
external resource would really be requested, and show up in Chromium's net log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nlbench.report import build_report, render_html, render_plots
from nlbench.report.render import png_size

CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var rows = [];
  document.querySelectorAll('img').forEach(function (img) {
    var box = img.getBoundingClientRect(), style = getComputedStyle(img);
    rows.push([img.naturalWidth, img.naturalHeight, box.width, box.height, img.complete ? 1 : 0,
               style.display, style.visibility].join(','));
  });
  var out = document.createElement('pre');
  out.id = 'nlbench-img-check';
  out.textContent = 'images:' + rows.join(';');
  document.body.appendChild(out);
});
</script>"""

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000",
)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's headless chromium, installed with apt-get when missing and we are root."""
    path = shutil.which("chromium")
    detail = ""
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update"], check=True, capture_output=True, timeout=900, env=env)
            subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, capture_output=True, timeout=1800,
                           env=env)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = f" (apt-get failed: {exc})"
        path = shutil.which("chromium")
    if path is None:
        reason = ("headless chromium is not installed and could not be installed here "
                  "(needs root, apt-get and the Debian archive)" + detail)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep: three blocks at two tiny sizes, measured in this process."""
    from nlbench.suite import parse_suite
    from nlbench.sweep import run_sweep, start_run

    suite_file = tmp_path_factory.mktemp("suite") / "browser.toml"
    suite_file.write_text(
        'name = "browser"\nblocks = ["identity", "nl", "srl_fft"]\nchannels = [8]\nresolutions = [4, 8]\n'
        'measure = ["params", "flops", "latency_fwd", "memory"]\n'
        "[latency]\nwarmup = 1\nmin_run_time_s = 0.0\nmin_samples = 3\nmax_samples = 3\n"
    )
    import tomllib

    suite = parse_suite(tomllib.loads(suite_file.read_text()), source=str(suite_file))
    run_dir = start_run(suite, tmp_path_factory.mktemp("results"), only_blocks=None, device=None, plugins=[])
    result = run_sweep(suite, run_dir, isolate=False)
    assert result.statuses.get("ok") == 6, result.statuses
    return run_dir


def open_in_chromium(chromium: str, page: Path, work: Path) -> tuple[str, list[str]]:
    """(DOM after load, URLs the page requested) — from --dump-dom and the net log."""
    net_log = work / f"{page.stem}-net.json"
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work / (page.stem + '-profile')}",
               f"--log-net-log={net_log}", "--dump-dom", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, page_requests(json.loads(net_log.read_text()))


def page_requests(net_log: dict) -> list[str]:
    """URLs of requests the page made. Chromium's own background requests (update
    checks, account lookups) have the initiator "not an origin"; a file:// page's
    requests have an opaque ("null") or file initiator."""
    types = {number: name for name, number in net_log["constants"]["logEventTypes"].items()}
    urls = []
    for event in net_log.get("events", []):
        params = event.get("params") or {}
        if types.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if params.get("initiator") == "not an origin" and "file://" not in params.get("network_isolation_key", ""):
            continue
        urls.append(params["url"])
    return urls


def checked_copy(html: str, path: Path) -> Path:
    """The page with its CSP removed and the image-check script added."""
    html, removed = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    assert removed == 1
    path.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    return path


def image_states(dom: str) -> list[list[str]]:
    found = re.search(r'<pre id="nlbench-img-check">images:([^<]*)</pre>', dom)
    assert found, "the check script did not run: " + dom[-500:]
    return [row.split(",") for row in found.group(1).split(";") if row]


def test_report_plots_render_and_the_page_requests_nothing(chromium: str, real_run: Path, tmp_path: Path) -> None:
    report = build_report([real_run])
    assert report.plots
    drawn = render_plots(report)  # the renderer draws; the report holds plot data only
    page = checked_copy(render_html(report, drawn), tmp_path / "report.html")
    dom, requests = open_in_chromium(chromium, page, tmp_path)

    states = image_states(dom)
    assert len(states) == len(report.plots) == len(drawn)
    for state, plot in zip(states, drawn):
        natural_w, natural_h, shown_w, shown_h, complete, display, visibility = state
        assert (int(natural_w), int(natural_h)) == png_size(plot.png), plot.key
        assert float(shown_w) > 100 and float(shown_h) > 50, plot.key
        assert complete == "1" and display != "none" and visibility == "visible", plot.key
    outside = [url for url in requests if not url.startswith(("file:", "data:"))]
    assert outside == []


def test_the_checks_catch_a_broken_image_and_an_external_request(chromium: str, tmp_path: Path) -> None:
    """Control: the same checks flag what they are meant to catch."""
    html = ('<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="x"></head><body>'
            '<img src="data:image/png;base64,bm90IGEgcG5n"><img src="http://example.invalid/plot.png">'
            "</body></html>")
    dom, requests = open_in_chromium(chromium, checked_copy(html, tmp_path / "control.html"), tmp_path)
    states = image_states(dom)
    assert [s[0] for s in states] == ["0", "0"]  # neither decodes
    assert "http://example.invalid/plot.png" in requests
