"""The HTML report in a real browser: headless Chromium (Debian's chromium + chromium-driver)
driven by selenium opens report.html from disk (file://, no server, no network) and checks:
no console errors, every chart drawn with data, the best trial selected on load (its images
shown, a ring on its point), a click on a Pareto point shows that trial's images and
configuration, a range dragged on a parallel-coordinates axis filters the table and the front,
the note on a chart the sample is too small for, the trials table sorts and selects.

Skipped, with the reason, only when chromium, chromedriver or selenium is not installed
(.ci/run installs them).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_helpers import make_experiment, smoke_study

from analysis.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1400,1000")

pytestmark = [pytest.mark.ray,  # a browser: outside the fast tier
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="chromium and chromedriver are not installed "
                                        "(apt-get install chromium chromium-driver)")]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")  # a fresh profile
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(120)
    yield d
    d.quit()


def _open(driver, path: Path) -> None:
    driver.get(path.resolve().as_uri())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.body && document.body.dataset.ready")
        if state:
            assert state == "true", "plotting failed: " + json.dumps(driver.get_log("browser"))
            return
        time.sleep(0.2)
    pytest.fail("the report did not finish plotting within 120 s")


# Per chart div: its traces, and for each trace how many data values it draws.
_CHART_DATA_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
  var sizes = gd.data.map(function (t) {
    if (t.type === 'parcoords') return t.dimensions.length ? t.dimensions[0].values.length : 0;
    if (t.type === 'image') return t.source ? 1 : 0;
    if (t.type === 'heatmap') return t.z.length;
    var y = t.y || t.x || [];
    return Array.prototype.filter.call(y, function (v) { return v !== null && v !== undefined; }).length;
  });
  return {id: gd.id, traces: gd.data.length, sizes: sizes, drawn: !!gd.querySelector('.main-svg'),
          fullData: (gd._fullData || []).length};
});
"""


def _script_json(path: Path, name: str):
    return json.loads(path.read_text().split(f'id="{name}">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))


def _ring(driver) -> list[str]:
    """The trial ids under the Pareto chart's ring (the selected trial)."""
    return driver.execute_script("""
      var gd = document.getElementById('chart-pareto');
      var t = gd.data.find(function (t) { return t.meta === 'selected'; });
      return Array.prototype.slice.call(t.customdata || []);""")


def _check_preselected(driver, best: str, trials: dict) -> None:
    """On load the best trial is selected: its images decoded in the panel, a ring on its point,
    its row marked."""
    assert best and driver.execute_script("return document.getElementById('selection').dataset.trial") == best
    widths = driver.execute_script(
        "return Array.from(document.querySelectorAll('#selection img')).map(i => i.naturalWidth)")
    assert len(widths) == len(trials[best]["images"]) == 4 and all(w > 64 for w in widths)
    assert _ring(driver) == [best]
    assert _row_selected(driver, best)
    labels = driver.execute_script(
        "return Array.from(document.querySelectorAll('#selection .trav-rows span')).map(s => s.textContent)")
    assert labels == trials[best]["traversals"]["rows"] and labels[0].startswith("z")


def _row_selected(driver, tid: str) -> bool:
    return driver.execute_script(
        f"return document.querySelector('#trials-table tr[data-trial=\"{tid}\"]').classList.contains('selected')")


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _click_pareto_point(driver) -> str:
    """A real mouse click on the first front point's pixel; returns its trial id."""
    from selenium.webdriver.common.action_chains import ActionChains

    element = driver.find_element("id", "chart-pareto")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    time.sleep(0.5)  # let the responsive layout settle before reading pixel positions
    point = driver.execute_script("""
      var gd = document.getElementById('chart-pareto');
      var i = gd.data.findIndex(function (t) { return t.meta === 'front'; });
      var t = gd.data[i], L = gd._fullLayout, s = L._size, r = gd.getBoundingClientRect();
      var x = L.xaxis.l2p(t.x[0]) + s.l, y = L.yaxis.l2p(t.y[0]) + s.t;
      return {id: String(t.customdata[0]), dx: x - r.width / 2, dy: y - r.height / 2};
    """)
    ActionChains(driver).move_to_element_with_offset(element, int(point["dx"]), int(point["dy"])).pause(0.5) \
        .click().perform()
    return point["id"]


def _check_report(driver, path: Path, screenshot: Path) -> None:
    _open(driver, path)
    assert _severe(driver) == []
    charts = driver.execute_script(_CHART_DATA_JS)
    figures = _script_json(path, "figure-data")
    assert {c["id"] for c in charts} == {k for k in figures if k.startswith("chart-")} and len(charts) >= 8
    for c in charts:
        assert c["drawn"] and c["traces"] >= 1 and c["fullData"] == c["traces"], c
        assert sum(c["sizes"]) > 0, f"{c['id']} has no data: {c}"
    trials, meta = _script_json(path, "trial-data"), _script_json(path, "report-data")
    _check_preselected(driver, meta["best"], trials)

    # Selecting a Pareto point shows that trial's images and configuration.
    tid = _click_pareto_point(driver)
    deadline = time.monotonic() + 10
    while driver.execute_script("return document.getElementById('selection').dataset.trial") != tid:
        assert time.monotonic() < deadline, "clicking a Pareto point did not select its trial"
        time.sleep(0.2)
    panel = driver.execute_script("""
      var p = document.getElementById('selection');
      return {imgs: Array.from(p.querySelectorAll('img')).map(function (i) {
                return {src: i.getAttribute('src'), w: i.naturalWidth, kind: i.closest('figure').dataset.kind}; }),
              text: p.innerText};
    """)
    expected = trials[tid]["images"]
    assert [i["kind"] for i in panel["imgs"]] == [k for k, _, _, _ in expected] == [
        "recon", "traversals", "samples_std1", "samples_std3"]
    assert [i["src"] for i in panel["imgs"]] == [meta["images"][key] for _, _, key, _ in expected]
    assert all(i["w"] > 64 for i in panel["imgs"]), "an image did not decode"
    assert f"trial {tid}" in panel["text"] and "Configuration" in panel["text"]
    for key, value, _ in trials[tid]["config"][:3]:
        assert key in panel["text"] and value in panel["text"]
    assert _row_selected(driver, tid)
    assert _ring(driver) == [tid]  # the selected point is marked
    driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 50_000
    assert _severe(driver) == []


def _drag_parallel_axis(driver, axis: int, top: float, bottom: float) -> None:
    """A real mouse drag along a parallel-coordinates axis, from `top` to `bottom` (fractions of
    its height): small steps, as a hand moves, so that the axis' brush follows."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", driver.find_element("id", "chart-parallel"))
    time.sleep(0.5)
    x, y, _, h = driver.execute_script("""
      var axes = document.querySelectorAll('#chart-parallel g.axis-brush rect.background');
      var r = axes[arguments[0]].getBoundingClientRect();
      return [r.x + r.width / 2, r.y, r.width, r.height];""", axis)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x), int(y + top * h))
    actions.pointer_action.pointer_down()
    for k in range(1, 11):
        actions.pointer_action.move_to_location(int(x), int(y + (top + (bottom - top) * k / 10) * h))
        actions.pointer_action.pause(0.05)
    actions.pointer_action.pointer_up()
    actions.perform()
    time.sleep(0.5)


def _check_filtering(driver, path: Path) -> None:
    """A range dragged on the last axis (the reconstruction loss) keeps exactly the trials whose
    value lies in it, in the table and on the front; "Show all" brings everything back."""
    figure = _script_json(path, "figure-data")["chart-parallel"]
    ids, values = figure["layout"]["meta"]["trial_ids"], figure["data"][0]["dimensions"][-1]["values"]
    _drag_parallel_axis(driver, len(figure["data"][0]["dimensions"]) - 1, 0.1, 0.6)
    lo, hi = driver.execute_script(
        "return document.getElementById('chart-parallel').data[0].dimensions.slice(-1)[0].constraintrange")
    inside = {i for i, v in zip(ids, values, strict=True) if lo <= v <= hi}
    assert 0 < len(inside) < len(ids)
    shown = driver.execute_script("return Array.from(document.querySelectorAll('#trials-table tbody tr'))"
                                  ".filter(r => !r.classList.contains('filtered')).map(r => r.dataset.trial)")
    assert set(shown) == inside
    assert driver.find_element("id", "filter-count").text == f"{len(inside)} of {len(ids)}"
    kept = driver.execute_script("""
      var gd = document.getElementById('chart-pareto'), out = [];
      gd.data.forEach(function (t) { if (t.meta === 'front' || t.meta === 'dominated')
        (t.selectedpoints || []).forEach(function (k) { out.push(t.customdata[k]); }); });
      return out;""")
    assert set(kept) == inside
    driver.find_element("id", "filter-clear").click()
    time.sleep(0.5)
    assert not driver.execute_script("return document.querySelectorAll('#trials-table tr.filtered').length")
    assert not driver.find_element("id", "filter-bar").is_displayed()


def test_generated_report_in_browser(driver, tmp_path):
    exp = make_experiment(tmp_path)
    report = write_report(exp, tmp_path / "report.html", parquet=False)
    _check_report(driver, report, tmp_path / "report.png")
    _check_filtering(driver, report)
    # A chart the sample cannot support says so, greyed: every configuration here has one seed.
    note = driver.find_element("css selector", "#seeds .sample-note")
    assert note.is_displayed() and "needs at least 2" in note.text
    grey = driver.execute_script("return getComputedStyle(document.querySelector('#seeds .chart')).filter")
    assert grey == "grayscale(1)"

    # The trials table sorts by a clicked heading (numbers as numbers, empty cells last) ...
    headings = driver.execute_script(
        "return Array.from(document.querySelectorAll('#trials-table th')).map(t => t.textContent)")
    col = headings.index("rec_loss [nats/image]")
    header = driver.find_elements("css selector", "#trials-table th")[col]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", header)
    values_js = ("return Array.from(document.querySelectorAll('#trials-table tbody tr'))"
                 f".map(r => r.cells[{col}].dataset.sort)")
    header.click()
    up = driver.execute_script(values_js)
    nums = [float(v) for v in up if v]
    assert nums == sorted(nums) and up[len(nums):] == [""] * (len(up) - len(nums))
    header.click()
    down = [float(v) for v in driver.execute_script(values_js) if v]
    assert down == sorted(nums, reverse=True)
    # ... and a click on a row selects that trial, also one without images (diverged).
    row = driver.find_element("css selector", "#trials-table tbody tr.o-diverged")
    row.click()
    selected = driver.execute_script("return document.getElementById('selection').dataset.trial")
    assert selected == row.get_attribute("data-trial")
    assert "No images for this trial" in driver.find_element("id", "selection").text
    assert _severe(driver) == []


def test_smoke_study_report_in_browser(driver, tmp_path_factory, tmp_path):
    """The report study.launch wrote at the end of a real smoke study."""
    smoke = smoke_study(tmp_path_factory.getbasetemp() / "smoke_study")
    _check_report(driver, smoke / "report.html", tmp_path / "smoke.png")
