"""The run report: built from a run directory, opened in a real headless Chromium, every plot loads."""

import re
import shutil
import subprocess

import pytest

from siri.cli.train import print_summary
from siri.runs.report import build_report
from siri.runs.run_dir import RunDir
from siri.runs.summary import evaluation_table, read_summary
from siri.skills.bank import SkillBank

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def fake_run(root, name, success_slope):
    """A real run directory with metrics over three phases, evaluations, a summary and a skill bank."""
    run = RunDir.create(root / name, "algo:\n  name: gigpo\n", {"seeds": {"train": 0}})
    for it in range(1, 13):
        phase = "warmup" if it <= 4 else "skills"
        row = {"iteration": it, "phase": phase, "train/return": 0.1 * it, "train/success": min(1, success_slope * it),
               "train/invalid_rate": 0.3 / it, "train/episode_len": 20 - it, "kl": 0.001 * it, "loss/policy": -0.01,
               "loss/int": 0.5 if phase == "skills" else 0.0, "lambda": 0.1 * max(0, it - 4),
               "skills/active": max(0, it - 6), "skills/candidate": 2, "skills/retired": 1}
        if phase == "skills":
            row.update({"skills/paired_zero_share": 0.5, "skills/paired_zero_share_cumulative": 0.6 - 0.01 * it,
                        "skills/paired_mean": 0.1, "skills/paired_mean_cumulative": 0.01 * it})
        if phase == "skills" and it % 2 == 0:
            row.update({"siri/int_gap": -1.0 + 0.05 * it, "siri/int_logp_plain": -2.0, "siri/int_logp_skill": -1.0})
        if it % 4 == 0:
            row.update({"eval/success": success_slope * it, "eval/score": success_slope * it,
                        "eval/success/pick_and_place": 0.5, "eval/success/pick_heat_then_place": 0.1 * it / 4})
        run.log(row)
    run.close()
    run.write_json("summary.json", {"evals": {
        "bootstrap": {"iteration": 0, "success": 0.2, "score": 0.2, "per_task_type": {"pick_and_place": 0.3}},
        "final": {"iteration": 12, "success": 0.6, "score": 0.6, "per_task_type": {"pick_and_place": 0.7}}}})
    bank = SkillBank.open(run.path)
    good, bad = bank.add_candidates(["WHEN the task is to heat THEN go to the microwave | first",
                                     "WHEN you hold nothing THEN look"], "pick_heat_then_place", 5, "self")
    for k, d in enumerate([0.5, 0.25, 0.75, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5, 0.25]):  # the gate's first look: 10
        bank.record_paired(good.id, [d], [0.0], 6 + k)
        bank.record_paired(bad.id, [0.0], [0.5 + 0.1 * k], 6 + k)
    bank.update_status(10)
    bank.save()
    return run.path


def test_report_files_and_content(tmp_path):
    path = fake_run(tmp_path, "siri-run", 0.05)
    html_path, md_path = build_report([path])
    html = html_path.read_text()
    assert html_path.parent == path
    # self-contained: every image is an embedded PNG, nothing is fetched
    images = re.findall(r"<img [^>]*src='([^']*)'", html)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in html and "https://" not in html
    # the skill table shows statuses, CIs and texts (escaped), the config and versions are there
    assert "active" in html and "retired" in html and "WHEN the task is to heat" in html
    assert "first" in html and "algo:" in html and "&quot;torch&quot;" in html
    md = md_path.read_text()
    assert "|  | bootstrap | final (plain) |" in md and "| success | 0.200 | 0.600 |" in md
    assert "\\|" in md  # the | inside a skill text is escaped
    for link in re.findall(r"\]\((report_files/[^)]+)\)", md):
        assert (path / link).is_file()
    # the skill mechanism: zero share, paired mean and internalization gap, each with its one-line meaning
    assert "Skill mechanism" in html and "Skill mechanism" in md
    assert "internalization gap (probe)" in md and "plain policy absorbs what the skills say" in html
    assert "paired validations exactly 0 (share, cumulative)" in md and "mean paired utility (this iteration)" in md


def test_report_leaves_out_the_mechanism_when_a_run_has_none_of_it(tmp_path):
    run = RunDir.create(tmp_path / "gigpo", "algo:\n  name: gigpo\n", {"seeds": {"train": 0}})
    for it in range(1, 4):
        run.log({"iteration": it, "phase": "gigpo", "train/return": 0.1 * it, "train/success": 0.1})
    run.close()
    run.write_json("summary.json", {"evals": {}})
    html_path, md_path = build_report([run.path])
    assert "Skill mechanism" not in html_path.read_text() and "internalization gap" not in md_path.read_text()


def test_train_cli_and_report_show_the_same_evaluation_table(tmp_path, capsys):
    path = fake_run(tmp_path, "siri-run", 0.05)
    summary = read_summary(RunDir.open(path))
    header, rows = evaluation_table(summary)
    assert header == ["", "bootstrap", "final (plain)"]
    assert [r[0] for r in rows] == ["iteration", "success", "score", "  pick_and_place"]
    _, md_path = build_report([path])
    md = md_path.read_text()
    print_summary(summary, path)
    printed = capsys.readouterr().out
    for row in rows:
        assert "| " + " | ".join(row) + " |" in md
        assert all(cell.strip() in printed for cell in row)


def test_overlay_of_several_runs(tmp_path):
    a, b = fake_run(tmp_path, "gigpo", 0.03), fake_run(tmp_path, "siri", 0.06)
    html_path, _ = build_report([a, b], tmp_path / "cmp")
    html = html_path.read_text()
    assert "gigpo vs siri" in html and html_path.parent == tmp_path / "cmp"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (scripts/run.sh test installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    path = fake_run(tmp_path, "siri-run", 0.05)
    html_path, _ = build_report([path])
    # Let the browser itself say how many images decoded: a script appended to a copy of the page
    # writes the count into the DOM, which --dump-dom prints after load.
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace(
        "</body>",
        "<script>window.addEventListener('load',()=>{const i=[...document.images];"
        "document.body.insertAdjacentHTML('beforeend','<p id=probe>images='+i.length+' broken='+"
        "i.filter(x=>!(x.complete&&x.naturalWidth>0)).length+'</p>')});</script></body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    found = re.search(r"images=(\d+) broken=(\d+)", dom)
    assert found, dom[-2000:]
    assert int(found.group(1)) >= 4 and found.group(2) == "0"
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, "--window-size=1200,3000", f"--screenshot={shot}", html_path.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a rendered page with plots, not a blank one


def test_report_warns_when_the_run_was_made_with_other_versions(tmp_path):
    """A run made with another torch: the report says so, and `siri report` warns (a current run: neither)."""
    import json

    from typer.testing import CliRunner

    from siri.cli import app
    from siri.runs.run_dir import library_versions

    current = fake_run(tmp_path, "now", 0.05)
    result = CliRunner().invoke(app, ["report", str(current)])
    assert result.exit_code == 0 and "warning" not in result.output
    assert "other versions" not in (current / "report.md").read_text()
    old = fake_run(tmp_path, "old", 0.05)
    meta = json.loads((old / "meta.json").read_text())
    assert meta["versions"] == library_versions()
    meta["versions"]["torch"] = "1.0.0"
    (old / "meta.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, ["report", str(old)])
    assert result.exit_code == 0, result.output
    assert f"warning: {old} was made with torch 1.0.0 (now {library_versions()['torch']})" in result.output
    assert "torch 1.0.0 (now" in (old / "report.md").read_text() and "class='warn'" in (old / "report.html").read_text()
