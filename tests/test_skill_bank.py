"""The skill bank: dedupe, lifecycle, the cap, the prompt block, and file validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from siri.skills.bank import BANK_FILENAME, SkillBank, SkillBankError, gate_of_run, near_identical
from siri.skills.validation import Gate

HEAT = "WHEN the task is to heat a apple THEN go to the microwave and heat it"
OPEN = "WHEN the fridge is closed THEN open it"
NEED_EGG = "WHEN you need a egg THEN go to the cabinet first"
NEED_APPLE = "WHEN you need a apple THEN go to the countertop first"


def test_add_candidates_dedupes_near_duplicates() -> None:
    bank = SkillBank()
    added = bank.add_candidates([HEAT, OPEN, "when the fridge is closed, then open it.", NEED_EGG, NEED_APPLE],
                                "heat", iteration=3, miner="trace", sources=[4, 5])  # fmt: skip
    assert [s.id for s in added] == ["s1", "s2", "s3", "s4"]
    assert [s.text for s in added] == [HEAT, OPEN, NEED_EGG, NEED_APPLE]
    s = bank.get("s1")
    assert (s.status, s.task_type, s.sources, s.iteration, s.miner) == (
        "candidate",
        "heat",
        [4, 5],
        3,
        "trace",
    )
    # the same text for another task type is a different skill; a retired skill still blocks its duplicate
    assert [s.id for s in bank.add_candidates([OPEN], "cool", 4, "self")] == ["s5"]
    bank.get("s2").status = "retired"
    assert bank.add_candidates(["WHEN  the fridge is closed THEN open it"], "heat", 5, "self") == []
    with pytest.raises(SkillBankError, match="unknown skill id 's99'"):
        bank.get("s99")


def test_dedupe_keeps_refinements_and_contradictions_of_known_and_retired_skills() -> None:
    """Issue 18: with "WHEN you need a apple THEN go to the countertop first" retired, its refinement was
    rejected as a duplicate (its words are a superset: token_set_ratio 100). Only near-identical texts are."""
    bank = SkillBank()
    (apple,) = bank.add_candidates([NEED_APPLE], "heat", 0, "trace")
    apple.status = "retired"  # rejected by the gate
    refined = "WHEN you need a apple and the countertop is empty THEN go to the fridge first"
    contradiction = "WHEN you need a apple THEN go to the fridge first"
    fresh = [
        refined,
        contradiction,
        "WHEN you need a apple THEN go to the countertop first and then to the fridge",
        "WHEN you need a apple THEN go to shelf 1 first",
        "WHEN you need a apple THEN go to shelf 2 first",
        "WHEN you need a soapbar THEN go to the sink first",
        "WHEN you need a soapbar THEN go to the desk first",
    ]
    assert [s.text for s in bank.add_candidates(fresh, "heat", 2, "self")] == fresh
    # a refinement of a skill that is still a candidate is new as well
    more = refined + " and open it"
    assert [s.text for s in bank.add_candidates([more], "heat", 3, "self")] == [more]
    # near-identical texts of known skills, retired or not, are dropped: case, spaces, punctuation, one typo
    near = [
        NEED_APPLE.upper(), "  when you need a apple, then go to the countertop first.  ",
        "WHEN you need a apple THEN go to the countertop  first!",
        "WHEN you need a aple THEN go to the countertop first",  # a deletion
        "WHEN you need a apple THEN go to the countretop first",  # a transposition
        "WHEN you need an apple THEN go to the countertop first",  # an insertion
        "WHEN you need a apple THEN go to shelf 1 first.", contradiction.lower(), refined.replace("empty", "emtpy"),
    ]  # fmt: skip
    assert bank.add_candidates(near, "heat", 4, "self") == []
    # within one batch too, and the same text for another task type is another skill
    assert len(bank.add_candidates(["WHEN x THEN y", "when x then y."], "cool", 5, "self")) == 1


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("WHEN a THEN go to cabinet 1", "when a, then go to cabinet 1.", True),
        ("WHEN a THEN go to cabinet 1", "WHEN a THEN go to cabinet 10", False),  # receptacle numbers differ
        ("WHEN a THEN go to cabinet 1", "WHEN a THEN go to cabinet 2", False),
        ("WHEN a THEN open the fridge", "WHEN a THEN open teh fridge", True),  # one transposition
        ("WHEN a THEN open the fridge", "WHEN a THEN open the fridge first", False),
        ("WHEN a THEN go to the sink", "WHEN a THEN go to the desk", False),
    ],
)
def test_near_identical(a: str, b: str, same: bool) -> None:
    assert near_identical(a, b) is same and near_identical(b, a) is same


def _record(bank: SkillBank, skill_id: str, diffs: list[float], iteration: int) -> None:
    for d in diffs:  # one group per difference: with-arm mean d, plain-arm mean 0
        bank.record_paired(skill_id, [d, d], [0.0, 0.0], iteration)


def _ten(pattern: list[float]) -> list[float]:
    """Ten evaluations: the default gate (looks 4..16 at alpha 0.05) takes its first look at 10."""
    return (pattern * 10)[:10]


def test_lifecycle_promote_retire_inconclusive_and_cap(tmp_path: Path) -> None:
    bank = SkillBank(tmp_path / BANK_FILENAME, max_active=2)
    bank.add_candidates([HEAT, OPEN, NEED_EGG, NEED_APPLE], "heat", 0, "self")
    bank.add_candidates(["WHEN stuck THEN look"], "general", 0, "self")
    _record(bank, "s1", _ten([0.5, 0.25, 0.75, 0.5]), 1)  # LCB 0.253 > 0 -> active
    _record(bank, "s2", _ten([-0.5, 0.0, -0.25, -0.25]), 1)  # UCB < 0 -> retired
    _record(bank, "s3", [1.0, -1.0, 1.0], 1)  # 3 < the first look -> stays candidate
    _record(bank, "s5", _ten([0.2, 0.2, 0.3, 0.1]), 1)  # general, active
    changes = bank.update_status(2)
    assert [(c[0], c[1], c[2]) for c in changes] == [
        ("s1", "candidate", "active"), ("s2", "candidate", "retired"), ("s5", "candidate", "active"),
    ]  # fmt: skip
    assert bank.get("s1").promoted_at == 2 and bank.get("s2").retired_at == 2
    assert "UCB <= 0" in bank.get("s2").reason and "over 10 evaluations" in bank.get("s2").reason
    _record(bank, "s3", [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0], 3)  # 10 evals, noisy: still undecided
    assert bank.update_status(3) == []
    _record(bank, "s3", [-1.0, 1.0] * 3, 4)  # 16 evals without significance
    assert bank.update_status(4)[0][:3] == ("s3", "candidate", "retired")
    assert bank.get("s3").reason.startswith("no significant benefit")
    # the cap: a third active "heat" skill (s4, better than s1) pushes the worst one (s1) out
    _record(bank, "s4", _ten([1.0, 0.9, 1.0, 1.1]), 5)
    bank.add_candidates(["WHEN the microwave is closed THEN open it first"], "heat", 5, "self")  # s6
    _record(bank, "s6", _ten([0.9, 0.9, 1.0, 1.0]), 5)
    changes = bank.update_status(6)
    assert [(c[0], c[2]) for c in changes] == [("s4", "active"), ("s6", "active"), ("s1", "retired")]
    assert changes[-1][3] == "over the cap of 2 active skills for heat"
    assert [s.id for s in bank.skills("active")] == ["s4", "s5", "s6"]
    assert len(bank.skills("retired")) == 3 and bank.skills("candidate") == []
    assert bank.utility("s4") == pytest.approx(0.99)
    # a saved bank reloads identically
    bank.save()
    again = SkillBank.open(tmp_path)
    assert again.to_json() == bank.to_json() and len(again) == 6
    assert json.loads((tmp_path / BANK_FILENAME).read_text())["schema"] == "siri.skillbank"
    # ids continue after reload
    assert again.add_candidates(["WHEN the sink is dirty THEN clean it"], "clean", 7, "self")[0].id == "s7"


def test_gate_off_activates_all_candidates_under_the_cap() -> None:
    bank = SkillBank(max_active=2)
    bank.add_candidates([HEAT, OPEN, NEED_EGG], "heat", 0, "trace")
    changes = bank.update_status(1, Gate(enabled=False))
    assert [(c[0], c[2]) for c in changes] == [
        ("s1", "active"),
        ("s2", "active"),
        ("s3", "active"),
        ("s3", "retired"),
    ]


def test_select_picks_task_type_and_general_by_utility() -> None:
    bank = SkillBank()
    bank.add_candidates([HEAT, OPEN, NEED_EGG], "heat", 0, "self")
    bank.add_candidates(["WHEN stuck THEN look"], "general", 0, "self")
    bank.add_candidates(["WHEN the task is to cool THEN use the fridge"], "cool", 0, "self")
    for sid, d in [("s1", 0.2), ("s2", 0.6), ("s4", 0.4), ("s5", 0.9)]:
        _record(bank, sid, _ten([d, d + 0.1, d - 0.1, d]), 0)
    bank.update_status(1)
    def texts(task_type: str, top_k: int | None = None) -> list[str]:
        return [s.text for s in bank.select(task_type, top_k)]

    assert texts("heat") == [OPEN, "WHEN stuck THEN look", HEAT]
    assert texts("heat", top_k=1) == [OPEN]
    assert texts("cool") == ["WHEN the task is to cool THEN use the fridge", "WHEN stuck THEN look"]
    assert texts("clean", top_k=0) == []
    assert [s.id for s in bank.select("clean")] == ["s4"]  # s3 (NEED_EGG) is still a candidate


def _write(path: Path, obj: object) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _valid_file(tmp_path: Path) -> dict:
    bank = SkillBank(tmp_path / BANK_FILENAME)
    bank.add_candidates([HEAT, OPEN], "heat", 0, "self", sources=[1])
    _record(bank, "s1", [0.5, 0.25], 1)
    bank.save()
    return json.loads((tmp_path / BANK_FILENAME).read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", "not a readable JSON skill bank"),
        (lambda d: [1, 2], "not a SIRI skill bank"),
        (lambda d: {**d, "schema": "other.thing"}, "schema 'other.thing'"),
        (lambda d: {**d, "version": 2}, "version 2, this SIRI reads version 1"),
        (lambda d: {**d, "extra": 1}, "unknown fields \\['extra'\\]"),
        (lambda d: {**d, "next_id": 2}, "next_id 2 must exceed"),
        (lambda d: {**d, "skills": [{**d["skills"][0], "status": "great"}]}, "skills\\[0\\].status"),
        (lambda d: {**d, "skills": [{k: v for k, v in d["skills"][0].items() if k != "text"}]}, "missing fields \\['text'\\]"),
        (lambda d: {**d, "skills": [d["skills"][0], d["skills"][0]]}, "skills\\[1\\].id: 's1' is malformed or repeated"),
        (lambda d: {**d, "skills": [{**d["skills"][0], "iteration": "3"}]}, "skills\\[0\\].iteration: wrong type"),
        (lambda d: {**d, "skills": [{**d["skills"][0], "evals": [[1, 0.5]]}]}, "disagree with the 1 recorded evals"),
        (lambda d: {**d, "skills": [{**d["skills"][0], "evals": [[1, "x"], [1, 0.25]]}]}, "skills\\[0\\].evals"),
    ],
)  # fmt: skip
def test_bad_files_are_errors_naming_the_file(tmp_path: Path, mutate, message: str) -> None:
    good = _valid_file(tmp_path)
    path = _write(tmp_path / BANK_FILENAME, mutate(good))
    before = path.read_bytes()
    with pytest.raises(SkillBankError, match=message) as err:
        SkillBank.open(tmp_path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before  # never silently replaced


def test_gate_of_run_reads_the_run_config_and_tolerates_old_runs(tmp_path: Path) -> None:
    """``siri skills`` and reports show the bounds the run's gate decided with; an old run still shows."""
    from siri.config import TrainConfig

    assert gate_of_run(tmp_path) == Gate()  # no config.yaml: the defaults
    TrainConfig.load(None, ["siri.min_evals=2", "siri.max_evals=8", "siri.gate_alpha=0.1"]).save(
        tmp_path / "config.yaml"
    )
    assert gate_of_run(tmp_path) == Gate(0.1, 2, 8)
    (tmp_path / "config.yaml").write_text("siri:\n  min_evals: 3\n  max_evals: 12\n  confidence_z: 1.0\n")
    assert gate_of_run(tmp_path) == Gate(0.05, 3, 12)
    (tmp_path / "config.yaml").write_text("siri: [not, a, section")
    assert gate_of_run(tmp_path) == Gate()


def test_missing_file_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(SkillBankError, match="no skill bank file"):
        SkillBank.load(tmp_path / "nope.json")
    assert len(SkillBank.open(tmp_path)) == 0
    with pytest.raises(SkillBankError, match="dedupe_max_edits"):
        SkillBank(dedupe_max_edits=-1)
    with pytest.raises(SkillBankError, match="no file"):
        SkillBank().save()


def test_record_rollouts_and_validation_queue() -> None:
    from siri.rollout.types import Trajectory

    bank = SkillBank()
    bank.add_candidates([HEAT, OPEN, NEED_EGG], "heat", 0, "self")

    def traj(group: int, won: bool, skills: tuple[str, ...] = ()) -> Trajectory:
        return Trajectory(group=group, traj=0, seed=group, task="t", task_type="heat", won=won, score=float(won),
                          skill_ids=skills)  # fmt: skip

    batch = [traj(0, True, ("s2",)), traj(0, False), traj(0, True), traj(1, False, ("s2",)), traj(1, True)]
    recorded = bank.record_rollouts(batch, iteration=1, value=lambda t: t.score)
    assert recorded == {"s2": [0.5, -1.0]}
    assert bank.get("s2").evals == [(1, 0.5), (1, -1.0)]
    assert bank.validation_queue() == ["s1", "s3", "s2"]  # least evaluated first
    assert bank.task_types() == {"s1": "heat", "s2": "heat", "s3": "heat"}
    with pytest.raises(SkillBankError, match="s9"):
        bank.record_rollouts([traj(0, True, ("s9",)), traj(0, False)], iteration=1)


def test_a_placement_family_is_one_skill_whose_lines_apply_one_by_one() -> None:
    from siri.skills.bank import lines_for, placement_family, shown_skill, skill_applies

    mug = "WHEN you need a mug THEN look in the coffeemachine and the cabinet first"
    lamp = "WHEN you need a desklamp THEN look in the desk first"
    plan = "WHEN the task is to put a mug in the shelf THEN first find and take the mug"
    family = placement_family([plan, lamp, mug, "WHEN you need an object THEN go to the countertop first", mug])
    assert family == f"{lamp}\n{mug}"  # placement lines only, each once, sorted; role words and plans stay out
    assert placement_family([plan]) is None
    assert lines_for(family, "look at mug under the desklamp.") == [lamp, mug]  # a look-at task: both things
    assert lines_for(family, "put some mug on shelf.") == [mug]
    assert not skill_applies(family, "put some book on shelf.") and skill_applies(family, "put some mug on shelf.")
    assert shown_skill("s4", family, "look at mug under the desklamp.") == (("s4", lamp), ("s4", mug))
    assert lines_for(plan, "put some book on shelf.") == [plan]
    bank = SkillBank()
    (added,) = bank.add_candidates([f"  {lamp} \n\n{mug}  "], "look_at_obj_in_light", 0, "trace")
    assert added.text == family  # whitespace normalized per line, the lines kept
    assert bank.add_candidates([family], "look_at_obj_in_light", 1, "trace") == []  # a duplicate


def test_a_skill_about_one_thing_applies_to_tasks_that_name_it() -> None:
    from siri.skills.bank import skill_applies

    mug = "WHEN you need a mug THEN look in the cabinet first"
    assert skill_applies(mug, "put some mug on shelf.") and skill_applies(mug, "Put a clean Mug in coffeemachine.")
    assert not skill_applies(mug, "put some mugs on shelf.") and not skill_applies(mug, "look at cup under the desklamp.")
    lamp = "WHEN you need a desklamp THEN look in the desk and the sidetable first"
    assert skill_applies(lamp, "look at mug under the desklamp.") and not skill_applies(lamp, "look at mug under the floorlamp.")
    assert skill_applies("WHEN you need an apple THEN look in the fridge first", "heat some apple and put it in fridge.")
    for other in ("WHEN you need an object THEN go to the countertop first", "WHEN the cabinet is closed THEN open it", "WHEN the task is to put a mug in the shelf THEN ...", ""):
        assert skill_applies(other, "look at cup under the desklamp.")
