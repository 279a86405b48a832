"""Does GRPO with the sandbox reward learn, and would a broken reward be caught? (CPU, tiny model)

A random tiny Llama with a word-level tokenizer whose vocabulary holds whole programs as single tokens
(mirror left-right, flip up-down, rotate 180, identity, a crash) and whose grid cells are tokens (colour names).
Each *task family* has exactly one right program (the grids are drawn so that the four transformations give four
different grids) and its own colour palette, so a policy that solves every family must read the grids in its
prompt to choose the program. Training goes through the real ``arc-rl train`` machinery
(:func:`arc_rl.train.train`: TRL ``GRPOTrainer`` steps, PEFT LoRA, :class:`arc_rl.rewards.SandboxReward` running
every completion in real sandbox workers); held-out tasks of every family are sampled and scored with
``arc-rl infer`` (:func:`arc_rl.infer.infer`, transformers back-end, sandbox evaluation).

Four arms, same seed and settings:

- ``base``: the untrained model (no adapter);
- ``healthy``: GRPO with the real reward;
- ``shuffled``: the same run with the step's rewards permuted at random among its completions;
- ``shifted``: the same run with every completion given the reward of the one before it (rolled by one).

Both controls keep the reward distribution of each step and only break the link between a completion and its
own reward, so they must stay near the base model: if they learned, the policy would be learning from something
other than its rewards reaching the right completions. Besides the solve rate, each arm reports its
*discrimination* (:attr:`ArmResult.discrimination`): a signal-free run drifts towards whatever program the base
model favoured, which moves one family's solve rate, but it cannot learn to pick the program from the prompt.

    python3 benchmarks/grpo_learns.py --out benchmarks/results/grpo_learns_ci.json   # the CI setting (the test's)
    python3 benchmarks/grpo_learns.py --hidden 512 --layers 4 --families mirror,flip,rot180 --steps 60 \\
        --out benchmarks/results/grpo_learns_h512_3families.json                    # a less toy size

The capacity trap (docs/arc-rl-train.md): TRL does not train ``lm_head`` under LoRA, so a random model's output
layer stays random; at hidden size 64 it cannot put more than a few per cent of probability on any one token, and
GRPO then looks broken when it is not. Hidden size 256 is the smallest used here.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

# One token per whole program. A family's right program is the one named after it.
PROGRAMS = {
    "mirror": "import numpy as np\ndef transform(input_grid):\n    return np.fliplr(input_grid)",
    "flip": "import numpy as np\ndef transform(input_grid):\n    return np.flipud(input_grid)",
    "rot180": "import numpy as np\ndef transform(input_grid):\n    return np.rot90(input_grid, 2)",
    "identity": "def transform(input_grid):\n    return input_grid",
    "crash": "def transform(input_grid):\n    return 1 / 0",
}
TRANSFORMS = {"mirror": np.fliplr, "flip": np.flipud, "rot180": lambda g: np.rot90(g, 2), "identity": lambda g: g}
# Disjoint palettes (ARC colour numbers): the families differ only in their grids.
PALETTES = {"mirror": (1, 2, 3), "flip": (4, 5, 6), "rot180": (7, 8, 9)}
ARMS = ("base", "healthy", "shuffled", "shifted")
CONTROLS = ("shuffled", "shifted")
COMPLETION_TOKENS = 8   # a program token ends a completion; others run to this cap (rewarded 0)


@dataclass
class Setting:
    """Everything one benchmark run depends on; the CI test uses the defaults."""

    families: tuple[str, ...] = ("mirror", "flip")
    hidden: int = 256
    layers: int = 2
    steps: int = 40
    learning_rate: float = 1.5e-3
    scale_rewards: str = "group"   # TRL's advantage scaling: group, batch or none
    beta: float = 0.0              # KL to the base model
    lora_r: int = 8
    generations: int = 8
    tasks_per_step: int = 6
    train_tasks: int = 16          # per family
    heldout_tasks: int = 8         # per family
    samples: int = 32              # completions per held-out task at evaluation
    grid_side: int = 3
    workers: int = 2
    seed: int = 0
    arms: tuple[str, ...] = ARMS


@dataclass
class ArmResult:
    arm: str
    solve_rate: dict[str, float]                 # held-out family -> share of sampled completions that solve
    program_share: dict[str, dict[str, float]]   # held-out family -> program name (or "other") -> share
    train_s: float = 0.0
    eval_s: float = 0.0
    solved_curve: list[float] = field(default_factory=list)   # sandbox/solved_ratio per training step
    reward_curve: list[float] = field(default_factory=list)   # true mean reward per step (before any control)
    alerts: list[dict[str, Any]] = field(default_factory=list)   # arc_rl.monitor.Alert fields
    step_time_s: list[float] = field(default_factory=list)
    reward_s: list[float] = field(default_factory=list)

    @property
    def overall(self) -> float:
        return float(np.mean(list(self.solve_rate.values())))

    @property
    def discrimination(self) -> float:
        """How much more often the policy writes a family's program on that family's tasks than on the others',
        averaged over families: 0 for a policy that ignores the prompt, 1 for one that always picks right.
        Unlike the solve rate, a signal-free drift towards one program (which raises that family's rate and no
        other's) leaves it at 0."""
        shares = self.program_share
        return float(np.mean([shares[f][f] - np.mean([shares[g][f] for g in shares if g != f]) for f in shares]))


@dataclass
class Report:
    setting: Setting
    arms: dict[str, ArmResult]
    build_s: float
    total_s: float

    def to_json(self) -> dict[str, Any]:
        return {"setting": dataclasses.asdict(self.setting), "build_s": self.build_s, "total_s": self.total_s,
                "arms": {name: {**dataclasses.asdict(arm), "overall": arm.overall,
                                "discrimination": arm.discrimination}
                         for name, arm in self.arms.items()}}

    def table(self) -> str:
        families = self.setting.families
        lines = [f"{'arm':10s} " + " ".join(f"{f:>8s}" for f in families) + f" {'overall':>8s} {'discrim':>8s}"
                 f" {'train s':>8s}"
                 f" {'eval s':>7s}  alerts"]
        for name, arm in self.arms.items():
            lines.append(f"{name:10s} " + " ".join(f"{arm.solve_rate[f]:8.3f}" for f in families)
                         + f" {arm.overall:8.3f} {arm.discrimination:8.3f} {arm.train_s:8.1f} {arm.eval_s:7.1f}  {len(arm.alerts)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- tokenizer, model, tasks

def build_tokenizer():
    """Word-level: colour names (grid cells), a few words, every fixed sentence of the prompt as one token, and
    one token per whole program. The sentences as single tokens keep prompts short (about 70 tokens here)."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from arc_rl import prompts

    specials = ["<pad>", "<unk>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    words = [*prompts.COLOR_NAMES, "Example", "Input:", "Output:", "system", "user", "assistant",
             *(str(k) for k in range(1, 10))]
    vocab = {token: i for i, token in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    sentences = [prompts.SYSTEM_PROMPT, prompts.USER_INTRO, prompts.EXAMPLES_HEADER.strip(),
                 prompts.TEST_HEADER.strip(), prompts.USER_OUTRO.strip(), prompts.ASSISTANT_PREFIX.strip(),
                 "Cutting Knowledge Date: December 2023", "Today Date: 26 Jul 2024"]
    programs = [program_token(name) for name in PROGRAMS]
    tok.add_tokens([AddedToken(text, normalized=False, special=False) for text in sentences + programs])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                      pad_token="<pad>", unk_token="<unk>", padding_side="left")
    wrapped.add_special_tokens({"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>"]})
    wrapped.chat_template = prompts.LLAMA31_CHAT_TEMPLATE
    return wrapped


def program_token(name: str) -> str:
    return f"```python\n{PROGRAMS[name]}\n```"


def save_model(directory: Path, setting: Setting) -> Path:
    from tiny_llm import build_model

    tokenizer = build_tokenizer()
    heads = max(4, setting.hidden // 64)
    model = build_model(tokenizer, hidden_size=setting.hidden, layers=setting.layers, heads=heads,
                        kv_heads=heads // 2, seed=setting.seed)
    # A program token holds the whole answer up to its closing fence, so it also ends the completion, as the end
    # of turn would after a real model's closing fence (TRL and generate stop at every id listed here). Without
    # it a random model never stops and every completion runs into the length cap.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(
        [program_token(name) for name in PROGRAMS])]
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def probability_ceiling(hidden: int, seed: int = 0, iterations: int = 300) -> float:
    """The highest probability any program token can get from this random model when only the last hidden state
    can change, as under LoRA (TRL leaves ``lm_head`` untrained; the final RMSNorm's weight is not a LoRA target
    either). That state is ``sqrt(hidden)`` long after the norm, so the best logit margin grows with the width:
    this is the capacity trap of docs/arc-rl-train.md. Found by gradient ascent over the state's direction."""
    import torch
    from tiny_llm import build_model

    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hidden_size=hidden, layers=1, heads=4, kv_heads=2, seed=seed)
    weight = model.lm_head.weight.detach()
    scale = model.model.norm.weight.detach()
    targets = torch.tensor(tokenizer.convert_tokens_to_ids([program_token(name) for name in PROGRAMS]))
    directions = weight[targets].clone().requires_grad_(True)   # one per program token, starting on its row
    optimizer = torch.optim.Adam([directions], lr=0.05)
    for _ in range(iterations):
        states = scale * directions / directions.norm(dim=1, keepdim=True) * hidden ** 0.5
        logp = torch.log_softmax(states @ weight.T, dim=1)[torch.arange(len(targets)), targets]
        optimizer.zero_grad()
        (-logp.sum()).backward()
        optimizer.step()
    return float(logp.detach().exp().max())


def make_tasks(families: tuple[str, ...], per_family: int, side: int, seed: int) -> dict[str, dict]:
    """ARC JSON tasks (2 train pairs, 1 test pair with its output), ``per_family`` of each family, interleaved.

    Every grid is drawn again until the four transformations give four different grids, so exactly one program
    token solves each task."""
    rng = np.random.default_rng(seed)
    tasks = {}
    for k in range(per_family):
        for family in families:
            pairs = []
            for _ in range(3):
                grid = _distinct_grid(rng, PALETTES[family], side)
                pairs.append({"input": grid.tolist(), "output": TRANSFORMS[family](grid).tolist()})
            tasks[f"{family}-{seed}-{k:03d}"] = {"train": pairs[:2], "test": pairs[2:]}
    return tasks


def _distinct_grid(rng: np.random.Generator, palette: tuple[int, ...], side: int) -> np.ndarray:
    while True:
        grid = rng.choice(palette, size=(side, side))
        outputs = {TRANSFORMS[name](grid).tobytes() for name in TRANSFORMS}
        if len(outputs) == len(TRANSFORMS):
            return grid


def family_of(task_id: str) -> str:
    return task_id.split("-", 1)[0]


# --------------------------------------------------------------------------- the control rewards

def move_rewards(rewards: list, control: str, rng: np.random.Generator) -> list:
    """``shuffled``: a fresh random permutation of the step's rewards; ``shifted``: completion ``i`` gets the reward
    of completion ``i - 1`` (the first gets the last one's)."""
    if control == "shuffled":
        order = rng.permutation(len(rewards))
    elif control == "shifted":
        order = np.roll(np.arange(len(rewards)), 1)
    else:
        raise ValueError(f"unknown control {control!r}; choose one of {', '.join(CONTROLS)}")
    return [rewards[i] for i in order]


def controlled_reward(control: str, seed: int):
    """A subclass of the reward ``arc_rl.train.train`` builds (:class:`~arc_rl.rewards.AsyncSandboxReward`) whose
    rewards are moved to other completions (:func:`move_rewards`) after the real reward computed them. Test-only:
    it exists to show that a broken assignment stops learning. It overrides ``score``, the body of both the sync
    and the async call, so TRL's ``await`` path runs through it. The reward's own metrics (``sandbox/*``) are those
    of the real rewards, so the logs still show the true solve rate of the rollouts."""
    from arc_rl import AsyncSandboxReward

    move_rewards([], control, np.random.default_rng())   # an unknown control fails here, not at the first step
    rng = np.random.default_rng(seed)

    class ControlledReward(AsyncSandboxReward):
        def score(self, *args: Any, **kwargs: Any) -> list[float | None]:
            return move_rewards(super().score(*args, **kwargs), control, rng)

    ControlledReward.__name__ = f"{control.capitalize()}SandboxReward"
    return ControlledReward


@contextlib.contextmanager
def reward_control(control: str | None, seed: int):
    """Makes ``arc_rl.train.train`` build the controlled reward instead of ``AsyncSandboxReward`` (it imports the
    class from :mod:`arc_rl.rewards` when it starts, so replacing the module attribute is enough; the library is
    left as users run it)."""
    if control is None:
        yield
        return
    import arc_rl.rewards
    with mock.patch.object(arc_rl.rewards, "AsyncSandboxReward", controlled_reward(control, seed)):
        yield


# --------------------------------------------------------------------------- training and evaluation

def train_arm(setting: Setting, arm: str, model_dir: Path, train_path: Path, out: Path) -> tuple[Path, ArmResult]:
    from arc_rl import TrainConfig
    from arc_rl.train import train

    batch = setting.generations * setting.tasks_per_step
    config = TrainConfig(
        model_path=str(model_dir), dataset_path=str(train_path), output_dir=str(out),
        max_seq_length=256, max_completion_length=COMPLETION_TOKENS, lora_r=setting.lora_r,
        learning_rate=setting.learning_rate, lr_scheduler_type="constant", warmup_ratio=0.0,
        max_steps=setting.steps, num_generations=setting.generations, per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,   # the whole step in one micro-batch (the default is 4 since issue 15)
        scale_rewards=setting.scale_rewards, beta=setting.beta, reward_name="arc-v2-no-pixel-score", n_jobs=setting.workers, code_execution_timeout=1.0,
        save_steps=setting.steps + 1, logging_steps=1, resume_from_checkpoint="none", seed=setting.seed)
    started = time.perf_counter()
    with reward_control(arm if arm in CONTROLS else None, setting.seed):
        result = train(config)
    elapsed = time.perf_counter() - started
    steps = [row for row in result.log_history if "sandbox/solved_ratio" in row]
    arm_result = ArmResult(
        arm=arm, solve_rate={}, program_share={}, train_s=elapsed,
        solved_curve=[row["sandbox/solved_ratio"] for row in steps],
        reward_curve=[row["sandbox/reward_mean"] for row in steps],
        step_time_s=[row["step_time"] for row in steps if "step_time" in row],
        reward_s=[row["sandbox/run_s"] + row["sandbox/overhead_s"] for row in steps],
        alerts=[dataclasses.asdict(alert) for alert in result.alerts])
    return result.final_dir, arm_result


def evaluate(setting: Setting, model_dir: Path, adapter: Path | None, heldout_path: Path,
             out: Path) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per family: share of sampled completions (temperature 1) that solve their held-out task's test grid, and
    which program tokens the completions held."""
    from arc_rl import InferConfig
    from arc_rl.infer import infer

    config = InferConfig(base_model_path=str(model_dir), lora_path=None if adapter is None else str(adapter),
                         dataset_path=str(heldout_path), n_predictions=setting.samples, batch_size=setting.samples,
                         max_output_tokens=COMPLETION_TOKENS, max_model_len=256, backend="transformers",
                         output_folder=str(out), n_jobs=setting.workers, seed=setting.seed)
    with contextlib.redirect_stdout(None):  # infer prints its metrics table; the benchmark prints its own
        result = infer(config)
    solved: dict[str, list[bool]] = {}
    programs: dict[str, list[str]] = {}
    codes = {code: name for name, code in PROGRAMS.items()}
    for task_id, predictions in result.predictions.items():
        family = family_of(task_id)
        solved.setdefault(family, []).extend(bool(p.test and p.test["all_correct"]) for p in predictions)
        programs.setdefault(family, []).extend(codes.get((p.code or "").strip(), "other") for p in predictions)
    rates = {f: float(np.mean(v)) for f, v in solved.items()}
    shares = {f: {name: names.count(name) / len(names) for name in [*PROGRAMS, "other"]}
              for f, names in programs.items()}
    return rates, shares


def run(setting: Setting, workdir: Path, log=print) -> Report:
    import torch

    torch.manual_seed(setting.seed)
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = save_model(workdir / "model", setting)
    train_path = workdir / "train.json"
    train_path.write_text(json.dumps(make_tasks(setting.families, setting.train_tasks, setting.grid_side,
                                                seed=setting.seed)))
    heldout_path = workdir / "heldout.json"
    heldout_path.write_text(json.dumps(make_tasks(setting.families, setting.heldout_tasks, setting.grid_side,
                                                  seed=setting.seed + 10_000)))
    build_s = time.perf_counter() - started
    arms: dict[str, ArmResult] = {}
    for arm in setting.arms:
        if arm == "base":
            adapter, result = None, ArmResult(arm=arm, solve_rate={}, program_share={})
        else:
            adapter, result = train_arm(setting, arm, model_dir, train_path, workdir / arm)
        eval_started = time.perf_counter()
        result.solve_rate, result.program_share = evaluate(setting, model_dir, adapter, heldout_path,
                                                           workdir / f"{arm}-eval")
        result.eval_s = time.perf_counter() - eval_started
        arms[arm] = result
        log(f"{arm}: solve rate {result.overall:.3f} {result.solve_rate} (train {result.train_s:.1f} s, "
            f"eval {result.eval_s:.1f} s, {len(result.alerts)} collapse warnings)")
    return Report(setting=setting, arms=arms, build_s=build_s, total_s=time.perf_counter() - started)


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    defaults = Setting()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(defaults.families),
                        help=f"comma-separated, from {', '.join(PALETTES)}")
    for name in ("hidden", "layers", "steps", "lora_r", "generations", "tasks_per_step", "train_tasks",
                 "heldout_tasks", "samples", "grid_side", "workers", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--beta", type=float, default=defaults.beta)
    parser.add_argument("--scale-rewards", default=defaults.scale_rewards, choices=("group", "batch", "none"))
    parser.add_argument("--arms", default=",".join(defaults.arms), help=f"comma-separated, from {', '.join(ARMS)}")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workdir", default=None, help="keep models and runs here (default: a temporary folder)")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(Setting)}}
    values["families"] = tuple(args.families.split(","))
    values["arms"] = tuple(args.arms.split(","))
    unknown = [f for f in values["families"] if f not in PALETTES] + [a for a in values["arms"] if a not in ARMS]
    if unknown:
        parser.error(f"unknown families/arms: {', '.join(unknown)}")
    setting = Setting(**values)

    import logging
    import tempfile

    import torch
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        report = run(setting, workdir)
    print(report.table())
    print(f"total {report.total_s:.1f} s (model and tasks {report.build_s:.1f} s)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": "python3 " + " ".join([Path(sys.argv[0]).as_posix(), *(argv or sys.argv[1:])]),
                   "threads": args.threads, **report.to_json()}
        Path(args.out).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
