"""The HTML run report, loaded in a real headless Chromium (Debian's ``chromium`` driven by
Playwright; see ``tests/browser.py``): real local and SSH runs, hostile job output, a
10,000-job journal, the CLI entry points, and the template inside a built wheel."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "jobs"))

import jobs_basic  # noqa: E402
import jobs_report  # noqa: E402
from browser import Opened, browser  # noqa: E402
from helpers import JOBS, REPO, sshmr_cli, write_inventory  # noqa: E402
from synth_journal import make_journal  # noqa: E402

import sshmr  # noqa: E402
from sshmr.views.report import write_report  # noqa: E402


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


def journal_attempts(run_dir: str | Path) -> list[tuple[int, int]]:
    db = sqlite3.connect(Path(run_dir) / "journal.sqlite")
    try:
        return sorted(db.execute("SELECT job, number FROM attempts").fetchall())
    finally:
        db.close()


def bars(opened: Opened) -> list[tuple[int, int]]:
    return sorted(tuple(x) for x in opened.page.evaluate(
        "() => [...document.querySelectorAll('#timeline rect.bar')]"
        ".map(r => [+r.dataset.job, +r.dataset.attempt])"))


def text(opened: Opened, selector: str) -> str:
    return opened.page.inner_text(selector)


def test_cli_run_report_has_one_bar_per_attempt(chromium, tmp_path):
    (tmp_path / "n.txt").write_text("".join(f"{i}\n" for i in range(1, 13)))
    proc = sshmr_cli("run", f"{JOBS}/jobs_basic.py:RaiseOnOdd", "n.txt", "--max-retries", "1",
                     "--report", "r.html", "--json", "-q", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # some jobs failed: exit 1, report written
    summary = json.loads(proc.stdout.splitlines()[-1])
    run_dir = tmp_path / "sshmr-runs" / summary["run_id"]
    opened = Opened(chromium, tmp_path / "r.html")
    assert opened.errors == [] and opened.foreign_requests == []
    attempts = journal_attempts(run_dir)
    assert len(attempts) == 6 + 6 * 2
    assert bars(opened) == attempts
    assert opened.page.locator("#timeline rect.agg").count() == 0
    assert text(opened, "#run-id") == summary["run_id"]
    assert text(opened, "#run-state") == "DONE WITH FAILURES"  # CSS upper-cases the badge
    cards = text(opened, "#summary")
    assert "12\njobs" in cards and "6\nfailed" in cards and "18\nattempts" in cards
    assert "1\nexit code" in cards
    policies = text(opened, "#policies")
    assert "max_retries\t1" in policies and "timeout\tnone" in policies
    # six failed jobs, each collapsed, each holding both attempts with the error
    details = opened.page.locator("#failures details")
    assert details.count() == 6
    assert opened.page.locator("#failures details[open]").count() == 0
    assert not opened.page.is_visible("#job-3 pre")
    opened.page.click("#job-3 summary")
    body = text(opened, "#job-3")
    assert body.count("ValueError: odd input 3") >= 2 and "Traceback" in body
    assert "about to fail on 3" in body  # stdout tail
    assert "local" in text(opened, "#host-table")

    # `sshmr report` renders the same run; a bad -o path is one clear line, exit 2
    again = sshmr_cli("report", summary["run_id"], "-o", "again.html", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert bars(Opened(chromium, tmp_path / "again.html")) == attempts
    default = sshmr_cli("report", cwd=tmp_path)
    assert default.returncode == 0 and (run_dir / "report.html").exists()
    bad = sshmr_cli("report", "-o", "no/such/dir/r.html", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.startswith("sshmr: error: report path 'no/such/dir/r.html'")
    assert len(bad.stderr.splitlines()) == 1
    missing = sshmr_cli("report", "nope", cwd=tmp_path)
    assert missing.returncode != 0 and "no run 'nope'" in missing.stderr


def test_bad_report_path_is_refused_before_the_run(tmp_path):
    proc = sshmr_cli("run", f"{JOBS}/jobs_basic.py:Square", "--report", "missing/r.html",
                     cwd=tmp_path, stdin="1\n2\n")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("does not exist; create it or choose another path")
    assert not (tmp_path / "sshmr-runs").exists()  # nothing was started


def test_hostile_output_is_text_and_runs_nothing(chromium, tmp_path):
    script, img = jobs_report.SCRIPT, jobs_report.IMG
    items = [script, f"fail {script}", "fine"]
    result = sshmr.run(jobs_report.Hostile, items, runs_dir=str(tmp_path / "runs"),
                       max_retries=0)
    assert result.failed == 1 and result.succeeded == 2
    path = Path(result.report(tmp_path / "r.html"))
    html = path.read_text()
    assert "<script" not in html and "<img" not in html  # escaped, every occurrence
    opened = Opened(chromium, path)
    page = opened.page
    assert opened.errors == [] and opened.foreign_requests == []
    assert page.evaluate("() => [document.querySelectorAll('script, img, iframe').length,"
                         " window.pwned === undefined, document.title]") == [
        0, True, f"sshmr run {result.run_id} · done"]
    page.click("#failures summary")
    body = page.inner_text("#failures")
    assert img in body  # the error, as text
    assert repr(f"fail {script}") in body  # the payload, as text
    assert body.count(script) >= 3  # payload, stdout tail, stderr tail
    assert page.evaluate("() => window.pwned === undefined && !document.title.includes('pwned')")


def test_ten_thousand_job_report_loads(chromium, tmp_path):
    run_dir = make_journal(tmp_path / "run", jobs=10_000, hosts=4, slots=4)
    path = Path(write_report(run_dir, tmp_path / "big.html"))
    assert path.stat().st_size < 5 * 1024 * 1024
    opened = Opened(chromium, path)
    assert opened.errors == [] and opened.foreign_requests == []
    page = opened.page
    n_bars, n_agg = page.evaluate(
        "() => [document.querySelectorAll('#timeline rect.bar').length,"
        " document.querySelectorAll('#timeline rect.agg').length]")
    # every lane has more attempts than pixels: short attempts are aggregated, and the
    # chart holds no more shapes than a few per pixel column per lane
    assert n_agg > 0 and n_bars + n_agg < 16 * 1000 * 2
    assert "10000\njobs" in text(opened, "#summary")
    assert page.locator("#failures details").count() == 100
    assert page.locator("#stragglers tr").count() > 1
    assert page.locator("#timeline text.host").count() == 4


def test_report_of_a_run_on_real_sshd_hosts(cluster, chromium, tmp_path):
    inv = write_inventory(cluster, tmp_path / "inv.yaml", hosts=[0, 1], slots=2)
    result = sshmr.run(jobs_basic.RaiseOnOdd(), [str(i) for i in range(1, 25)],
                       inventory=str(inv), runs_dir=str(tmp_path / "runs"), max_retries=1)
    assert result.failed == 12
    opened = Opened(chromium, Path(result.report(tmp_path / "r.html")))
    assert opened.errors == [] and opened.foreign_requests == []
    assert bars(opened) == journal_attempts(result.run_dir)
    db = sqlite3.connect(Path(result.run_dir) / "journal.sqlite")
    hosts = sorted(r[0] for r in db.execute("SELECT name FROM hosts"))
    used = sorted(r[0] for r in db.execute("SELECT DISTINCT host FROM attempts"))
    db.close()
    # a short run may end before the second host is up: the hosts are those that came up
    assert used and set(used) <= set(hosts) <= {h.address for h in cluster.hosts[:2]}
    lanes = opened.page.evaluate(
        "() => [...document.querySelectorAll('#timeline text.host')].map(t => t.firstChild"
        ".textContent)")
    assert sorted(lanes) == used
    rows = opened.page.evaluate(
        "() => [...document.querySelectorAll('#host-table tr')].slice(1)"
        ".map(r => r.cells[0].textContent)")
    assert rows == hosts


def test_cancelled_run_still_writes_its_report(chromium, tmp_path):
    (tmp_path / "sleeps.txt").write_text("0.05\n" * 4 + "30\n" * 6)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sshmr", "run", f"{JOBS}/jobs_basic.py:Sleep", "sleeps.txt",
         "--slots", "2", "--report", "r.html", "-q"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            journals = list((tmp_path / "sshmr-runs").glob("*/journal.sqlite"))
            if journals and _succeeded(journals[0]) >= 4:
                break
            time.sleep(0.1)
        cancel = sshmr_cli("cancel", cwd=tmp_path)
        assert cancel.returncode == 0, cancel.stderr
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    opened = Opened(chromium, tmp_path / "r.html")
    assert opened.errors == []
    assert text(opened, "#run-state") == "CANCELLED"
    cards = text(opened, "#summary")
    assert "130\nexit code" in cards and "4\nsucceeded" in cards and "6\ncancelled" in cards
    assert opened.page.locator("#timeline rect.o-killed").count() >= 1  # the killed ones


def _succeeded(journal: Path) -> int:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'SUCCEEDED'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        db.close()


def test_wheel_ships_the_template(tmp_path):
    """A real non-editable build: the wheel holds templates/ as sshmr/templates/ and every
    module of sshmr/, and the installed copy renders a report with it."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        (src / name).write_bytes((REPO / name).read_bytes())
    for tree in ("sshmr", "templates"):
        subprocess.run(["cp", "-r", str(REPO / tree), str(src / tree)], check=True)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q",
                            "-w", str(tmp_path / "dist")], cwd=src, capture_output=True,
                           text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("sshmr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sshmr/templates/report.html.j2" in names
    modules = {str(p.relative_to(REPO)) for p in (REPO / "sshmr").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    run_dir = make_journal(tmp_path / "run", jobs=50, hosts=1, slots=2)
    code = ("import sys, sshmr.views.report as r; print(r.__file__); print(r.template_dir());"
            " r.write_report(sys.argv[1], sys.argv[2])")
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code, str(run_dir), str(tmp_path / "w.html")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    module, templates = out.stdout.split()
    assert module.startswith(str(site)) and templates == str(site / "sshmr" / "templates")
    assert "50\njobs" in (tmp_path / "w.html").read_text().replace("</div><div class=\"k\">",
                                                                    "\n")


def test_editable_install_finds_the_template(tmp_path):
    out = subprocess.run([sys.executable, "-c",
                          "import sshmr.views.report as r; print(r.template_dir())"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(REPO / "templates")


def test_report_of_a_real_mapreduce_run(chromium, tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    from wordcount import WordCount

    text = tmp_path / "in.txt"
    text.write_text("the cat <b>sat</b> on the mat\n" * 50)
    result = sshmr.run(WordCount(), [str(text)], output=str(tmp_path / "out"), reducers=2,
                       runs_dir=str(tmp_path / "runs"))
    assert result.ok, result
    opened = Opened(chromium, Path(result.report(tmp_path / "r.html")))
    assert opened.errors == []
    rows = opened.page.evaluate(
        "() => [...document.querySelectorAll('#mapreduce tr')].slice(1)"
        ".map(r => [...r.cells].map(c => c.textContent))")
    phases = [(r[1], r[2], r[3]) for r in rows if len(r) == 6]
    assert ("map", "1", "1") in phases and ("reduce", "2", "2") in phases, rows
    assert bars(opened) == journal_attempts(result.run_dir)
