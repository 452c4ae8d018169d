"""The evidence suite's smoke size, as CI runs it: every part end to end on a micro tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from micro_policy import MICRO_TINY
from siri.sft.tiny import build_tiny
from siri.skills.bank import SkillBank

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from study import bootstrap_ci, markdown, paired_ci, summarize  # noqa: E402


def test_suite_smoke_runs_every_part_and_writes_its_outputs(tmp_path: Path) -> None:
    model = tmp_path / "model"
    build_tiny(MICRO_TINY, model)
    out = tmp_path / "suite"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--size", "smoke", "--model", str(model),
                    "--out", str(out)], check=True, cwd=ROOT, capture_output=True, timeout=900)

    study = json.loads((out / "study-household" / "study.json").read_text())
    assert study["variants"] == ["grpo", "gigpo", "siri"] and study["seeds"] == [0]
    for variant in study["variants"]:
        low, point, high = (study["results"][variant]["success"][i] for i in (1, 0, 2))
        assert 0.0 <= low <= point <= high <= 1.0
        rows = (out / "study-household" / "runs" / f"{variant}-seed0" / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(r)["iteration"] for r in rows if "loss/policy" in r][-1] == 2
    assert (out / "study-household" / "curves.png").stat().st_size > 0

    speed = json.loads((out / "speed.json").read_text())
    assert set(speed["results"]) == {"household", "shop", "advantages", "ray_workers", "rollout", "update"}
    table = (out / "speed.md").read_text()
    assert "household / ALFWorld, steps" in table and "update: sorted / collection order" in table
    assert all(row["model"] == str(model) for row in speed["results"]["rollout"]["results"])  # --model reached it


def test_bootstrap_ci_matches_a_hand_case_and_covers_the_mean() -> None:
    # One seed whose episodes are all equal: every resample has that mean, so the interval is a point.
    assert bootstrap_ci([np.ones(5), np.ones(3)]) == (1.0, 1.0, 1.0)
    # Seeds with different means: the point is the mean of per-seed means, inside the interval.
    point, low, high = bootstrap_ci([np.array([0.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0])])
    assert point == 0.75 and low < point < high and low >= 0.0 and high <= 1.0


def test_paired_ci_pairs_episodes_and_is_narrower_on_correlated_runs() -> None:
    same = [np.array([1.0, 0.0, 1.0, 0.0])]
    assert paired_ci(same, same) == (0.0, 0.0, 0.0)
    # One episode flipped from failure to success out of 4: +0.25, and never below 0 (no episode got worse).
    point, low, high = paired_ci([np.array([1.0, 1.0, 1.0, 0.0])], same)
    assert point == 0.25 and low == 0.0 and high > 0.25
    # Two runs that share most outcomes: the paired interval is much narrower than either run's own.
    rng = np.random.default_rng(0)
    base = [rng.integers(0, 2, 70).astype(float) for _ in range(3)]
    better = [np.where(np.arange(70) < 5, 1.0, b) for b in base]
    _, lo, hi = paired_ci(better, base)
    _, lo_alone, hi_alone = bootstrap_ci(better)
    assert hi - lo < (hi_alone - lo_alone) / 2
    with pytest.raises(ValueError, match="same number of episodes"):
        paired_ci([np.ones(3)], [np.ones(4)])


def test_summarize_pairs_both_metrics_and_the_table_leads_with_the_chosen_one(tmp_path: Path) -> None:
    # One seed, three shop-like episodes (task type, won, score); SIRI raises two scores, wins nothing.
    episodes = {"bootstrap": [0.0, 0.5, 0.2], "gigpo": [0.2, 0.5, 0.2], "siri": [0.6, 0.5, 0.4]}
    for variant in ("gigpo", "siri"):
        run = tmp_path / "runs" / f"{variant}-seed0"
        run.mkdir(parents=True)
        evals = {name: {"outcomes": [["t", False, x] for x in episodes[key]]}
                 for name, key in (("bootstrap", "bootstrap"), ("final", variant))}
        if variant == "siri":  # SIRI's run also evaluated with skills in the prompt
            evals["final_with_skills"] = {"outcomes": [["t", True, 1.0], ["t", False, 0.5], ["t", False, 0.0]]}
        (run / "summary.json").write_text(json.dumps({"evals": evals}))
        rows = [{"iteration": 7, "update/internalized_steps": 3}, {"iteration": 8, "skills/mined_total": 2,
                                                                      "update/internalized_steps": 4}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        if variant == "siri":  # three paired validations in the run's skill bank: +0.5, 0, -0.2
            bank = SkillBank.open(run)
            (skill,) = bank.add_candidates(["WHEN shopping THEN search first"], "t", 1, "trace")
            for with_returns, without_returns in (([1.0, 0.5], [0.25, 0.25]), ([0.5], [0.5]), ([0.0], [0.2])):
                bank.record_paired(skill.id, with_returns, without_returns, 2)
            bank.save()
    results = summarize(tmp_path, "shop", ["gigpo", "siri", "siri-skills-at-inference"], [0])
    siri = results["siri"]
    assert siri["score"][0] == pytest.approx(0.5) and siri["success"] == (0.0, 0.0, 0.0)
    assert siri["per_seed"]["score"] == [pytest.approx(0.5)] and siri["per_task_type"]["score"]["t"][0] == pytest.approx(0.5)
    assert siri["paired"]["score"]["gain_over_bootstrap"][0] == pytest.approx(0.8 / 3)  # (0.6 + 0 + 0.2) / 3
    assert siri["paired"]["score"]["vs_gigpo"][0] == pytest.approx(0.6 / 3)  # (0.4 + 0 + 0.2) / 3
    assert siri["paired"]["success"]["vs_gigpo"] == (0.0, 0.0, 0.0)
    assert "vs_gigpo" not in results["gigpo"]["paired"]["score"]
    assert siri["per_seed_skills"] == [{"mined": 2, "active": 0, "retired": 0}]
    assert siri["per_seed_internalized_steps"] == [7]
    assert siri["validations"] == pytest.approx({"n": 3, "zero": 1 / 3, "positive": 1 / 3, "negative": 1 / 3,
                                                 "mean": (0.5 + 0.0 - 0.2) / 3})
    assert results["gigpo"]["validations"] == {"n": 0}
    kept = results["siri-skills-at-inference"]  # read from SIRI's runs, not trained again
    assert kept["metric"] == "final_with_skills" and kept["success"][0] == pytest.approx(1 / 3)
    assert kept["paired"]["score"]["vs_gigpo"][0] == pytest.approx((0.8 + 0.0 - 0.2) / 3)
    table = markdown(results, "score")
    assert "| variant | final score [95% CI] |" in table and "| siri | 0.500 [" in table and "+0.200 [" in table
    assert "| 3, 33%, +0.100 | 7 |" in table
    assert "final success" in markdown(results)
    # A SIRI run evaluated without skills cannot stand in for the skills-kept variant: said, not guessed.
    summary = tmp_path / "runs" / "siri-seed0" / "summary.json"
    evals = json.loads(summary.read_text())["evals"]
    del evals["final_with_skills"]
    summary.write_text(json.dumps({"evals": evals}))
    with pytest.raises(SystemExit, match="keep_skills_at_inference=true"):
        summarize(tmp_path, "shop", ["siri-skills-at-inference"], [0])


def test_gpu_smoke_runs_its_path_on_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu_smoke.py's CPU path (CI has no GPU): a random Qwen2, two GiGPO iterations per action mode,
    throughput and peak memory reported, every parameter checked on its device and dtype."""
    out = tmp_path / "gpu_smoke.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--device", "cpu", "--size",
                           "tiny", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dtype"] == "float32" and report["parameters"] > 0 and set(report["results"]) == {"generate", "choose"}
    for mode, result in report["results"].items():
        for key in ("rollout_generated_tokens_per_s", "rollout_tokens_per_s", "update_tokens_per_s", "peak_memory_mb"):
            assert result[key] > 0, (mode, key)
        assert len(result["train_success"]) == 2
    assert report["results"]["choose"]["invalid_rate"] == [0.0, 0.0]  # choose mode picks admissible actions only


def test_inference_cost_bench_reports_prompt_tokens_and_time_per_k(tmp_path: Path) -> None:
    model = tmp_path / "model"
    build_tiny(MICRO_TINY, model)
    out = tmp_path / "cost.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_inference_cost.py"), "--models", str(model),
                           "--envs", "household", "--episodes", "3", "--max-steps", "3", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = json.loads(out.read_text())["results"]
    rows = result["by_k"]
    assert list(rows) == ["0", "1", "3", "6"] and rows["0"]["skills_shown"] == 0
    tokens = [rows[k]["prompt_tokens_per_step"] for k in rows]
    assert tokens == sorted(tokens) and tokens[-1] > tokens[0]  # every skill shown lengthens the prompt
    assert rows["0"]["prompt_tokens_x_plain"] == 1.0 and all(rows[k]["seconds_per_step"] > 0 for k in rows)
