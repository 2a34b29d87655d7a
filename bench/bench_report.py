"""The HTML report at scale: its size and how long headless Chromium takes to open it.

    python bench/bench_report.py [--trials 500] [--epochs 10] [--opens 3] [--out docs/bench/report_scale.md]

A synthetic experiment in the exact layout Ray Tune and study.launch write
(tests/analysis_helpers.make_experiment): ``--trials`` trials of the four variants, two seeds
per configuration, with a few diverged, failed and running ones, ``--epochs`` reports each, and
images as large as a barely trained model's (grey noise PNGs, about 180 KB per trial, as the
smoke study's are). Then, timed: reading the folder (``load_experiment``), writing the report
(``write_report``, with the parquet files), and opening ``report.html`` from disk in headless
Chromium (Debian's chromium + chromedriver, the flags of tests/test_report_browser.py) until
every chart is drawn and the best trial is shown (``document.body.dataset.ready``), ``--opens``
times, a fresh browser each time. The report's parts are sized from the file itself. Load
average is recorded: the machine may be shared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from analysis_helpers import VARIANTS, FakeTrial, _params, make_experiment  # noqa: E402

from analysis import load_experiment  # noqa: E402
from analysis.report import write_report  # noqa: E402

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--window-size=1400,1000")
SCRIPTS = ("figure-data", "trial-data", "report-data")


def trials(n: int, epochs: int) -> list[FakeTrial]:
    """n trials: configurations of random variants with two seeds each; one in 25 diverges, one
    in 50 fails with an error, the last three still run."""
    rng = random.Random(0)
    out: list[FakeTrial] = []
    while len(out) < n:
        variant = VARIANTS[len(out) // 2 % len(VARIANTS)]
        params = _params(variant, rng)
        for seed in (0, 1):
            k = len(out)
            outcome = "running" if k >= n - 3 else "diverged" if k % 25 == 24 else "error" if k % 50 == 37 \
                else "completed"
            out.append(FakeTrial(variant, seed, params, epochs=epochs, outcome=outcome,
                                 stop_at=None if outcome == "completed" else max(1, epochs // 2),
                                 node_ip=f"10.0.0.{1 + k % 8}"))
    return out[:n]


def open_time(report: Path) -> tuple[float, float, list[str]]:
    """Seconds from the navigation's start to the first view (the trade-off chart drawn, the
    best trial's images and values shown, the table sortable) and to every chart drawn, and the
    console's severe messages."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='bench-chromium-')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(300)
    try:
        start = time.monotonic()
        driver.get(report.resolve().as_uri())  # returns at the load event
        while driver.execute_script("return document.body && document.body.dataset.ready") is None:
            time.sleep(0.1)
            if time.monotonic() - start > 300:
                return float("nan"), float("nan"), ["not ready after 300 s"]
        # The page's own marks, in ms from the navigation's start (report.js sets them).
        first, ready = driver.execute_script(
            "return ['report-first-view', 'report-ready'].map(n => performance.getEntriesByName(n)[0].startTime)")
        severe = [e["message"][:200] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        return first / 1000, ready / 1000, severe
    finally:
        driver.quit()


def parts(html: str) -> dict[str, int]:
    """Bytes of plotly.js, of each embedded JSON block, and of the rest of the page."""
    sizes = {name: len(html.split(f'id="{name}">', 1)[1].split("</script>", 1)[0]) for name in SCRIPTS}
    sizes["plotly.js"] = len(html.split("<script>", 1)[1].split("</script>", 1)[0])
    sizes["rest (HTML table, CSS, script)"] = len(html) - sum(sizes.values())
    return sizes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=500)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--opens", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write the synthetic experiment (default: a temp folder)")
    p.add_argument("--out", default=None, help="write the markdown table here too")
    args = p.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-report-"))
    load = [os.getloadavg()[0]]
    t0 = time.monotonic()
    exp_dir = make_experiment(root, f"synthetic{args.trials}", trials(args.trials, args.epochs), image_noise=3)
    made = time.monotonic() - t0
    t0 = time.monotonic()
    exp = load_experiment(exp_dir)
    loaded = time.monotonic() - t0
    t0 = time.monotonic()
    report = Path(write_report(exp_dir, experiment=exp))
    written = time.monotonic() - t0
    html = report.read_text()
    meta = json.loads(html.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    with_images = int(exp.trials.filter(like="image/").notna().any(axis=1).sum())
    images = sum(f.stat().st_size for f in exp_dir.glob("*/images/*.png"))
    opens = [open_time(report) for _ in range(args.opens)]
    load.append(os.getloadavg()[0])
    text = table(args, exp, report, html, meta, with_images, images, (made, loaded, written), opens, load)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def table(args, exp, report, html, meta, with_images, images, times, opens, load) -> str:
    made, loaded, written = times
    firsts, seconds = [f for f, _, _ in opens], [s for _, s, _ in opens]
    severe = sorted({m for _, _, msgs in opens for m in msgs})
    rows = [
        ("trials (with images)", f"{len(exp.trials)} ({with_images}): " + ", ".join(
            f"{n} {o}" for o, n in exp.trials["outcome"].value_counts().items())),
        ("images in the experiment folder",
         f"{images / 1e6:.1f} MB ({images / max(1, with_images) / 1e3:.0f} KB per trial)"),
        ("images embedded / linked", f"{len(meta['images']) // 4} / {with_images - len(meta['images']) // 4} trials"),
        ("report.html", f"**{report.stat().st_size / 1e6:.1f} MB**"),
        *((f"  of which {k}", f"{v / 1e6:.2f} MB") for k, v in parts(html).items()),
        ("write the synthetic experiment", f"{made:.0f} s"),
        ("load_experiment", f"{loaded:.1f} s"),
        ("write_report (with the parquet files)", f"{written:.1f} s"),
        (f"open in headless Chromium: the trade-off and the best trial shown ({len(firsts)} opens)",
         f"**{statistics.median(firsts):.1f} s** median (" + ", ".join(f"{s:.1f}" for s in firsts) + ")"),
        ("... and every chart drawn", f"{statistics.median(seconds):.1f} s median ("
         + ", ".join(f"{s:.1f}" for s in seconds) + ")"),
        ("console errors", "none" if not severe else "; ".join(severe)),
    ]
    when = datetime.date.today().isoformat()
    head = (f"`python bench/bench_report.py --trials {args.trials} --epochs {args.epochs}` ({when}; "
            f"load average {load[0]:.1f} before, {load[1]:.1f} after)\n\n| | |\n|---|---|\n")
    return head + "".join(f"| {k} | {v} |\n" for k, v in rows)


if __name__ == "__main__":
    main()
