"""Why a tiny model does or does not act on a placement skill: the warm start's data, and what the model fit.

    python benchmarks/diag_skill_following.py --model tiny-household-skills --recipe skills

Prints (1) how many of the recipe's action examples show a placement skill and how many of their "go to"
labels go to a place the skill names; (2) teacher-forced, on how many skill-prompt and plain-prompt "go
to" examples the model's greedy answer equals the label; (3) greedy first moves of 140 eval_id episodes
of household-lite with typical placements that go to the skill's first place, with and without the skill.
"""

from __future__ import annotations

import argparse

import torch

from siri.models.loading import load_policy
from siri.rollout.collector import RolloutConfig, collect
from siri.rollout.evaluation import evaluate
from siri.sft.demonstrator import places_named
from siri.sft.tiny import default_config
from siri.sft.warm_start import warm_start_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-household-skills")
    parser.add_argument("--recipe", default="skills")
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--episodes", type=int, default=140)
    args = parser.parse_args()
    from bench_skill_following import LITE, first_destination, skill_sets

    policy = load_policy(args.model, env="household", reference=False)
    tok, model = policy.tokenizer, policy.model.eval()
    examples = warm_start_examples(default_config("household", recipe=args.recipe), tok, lambda m: None).examples
    texts = [(tok.decode(p), tok.decode(t), p, t) for p, t in examples]
    shown = [x for x in texts if "WHEN you need" in x[0] and "look in" in x[0]]
    go = [x for x in shown if "go to" in x[1]]
    named = [x for x in go if any(f"go to {n} " in x[1] for n in
                                  places_named(x[0][x[0].index("WHEN you need"):].split("\n")[0]))]
    print(f"action examples {len(examples)}, with a placement skill {len(shown)}, their 'go to' labels {len(go)}, "
          f"to a named place {len(named)}")
    plain = [x for x in texts if "WHEN" not in x[0] and "go to" in x[1]]
    with torch.no_grad():
        for name, subset in (("skill-prompt", go[: args.examples]), ("plain-prompt", plain[: args.examples])):
            fit = 0
            for _, _, p, t in subset:
                logits = model(torch.tensor([p + t])).logits[0, len(p) - 1 : len(p) + len(t) - 1]
                fit += logits.argmax(-1).tolist() == t
            print(f"teacher-forced greedy equals the label on {fit} of {len(subset)} {name} 'go to' examples")
    options = {**LITE, "placements": "typical", "split": "eval_id", "max_steps": 1}
    sets, _ = skill_sets({**options, "max_steps": 20}, args.episodes)
    config = RolloutConfig(mode="choose", temperature=0.0, seed=0)
    hits = {}
    for name, skills_for in (("without the skill", None), ("with the skill", sets["typical"].__getitem__)):
        trajs = evaluate(lambda specs: collect(policy, "household", specs, config, env_options=options),
                         args.episodes, skills_for)
        hits[name] = sum(first_destination(t) == places_named(sets["typical"][t.seed][0][1])[0]
                         for t in trajs if sets["typical"][t.seed])
    with_skill = sum(bool(sets["typical"][s]) for s in range(args.episodes))
    print(f"greedy first move to the skill's first place: {hits['with the skill']} of {with_skill} episodes with "
          f"the skill, {hits['without the skill']} without")


if __name__ == "__main__":
    main()
