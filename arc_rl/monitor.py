"""Training-log callbacks: a JSON-lines metrics file, and early warnings of GRPO collapse.

The warning rules follow ``notes/grpo.md`` §11: completions running into the length cap, repetitive
completions, entropy moving fast, the vLLM/trainer importance ratios drifting, groups with no reward
signal, gradient-norm spikes. They only warn (in the log and in a JSON-lines file); thresholds are
starting points to tune on healthy runs. A rule fires when its condition becomes true and again only
after it has cleared, so a long bad stretch gives one warning, not one per log line.
"""
from __future__ import annotations

import enum
import json
import logging
import math
import statistics
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from transformers import TrainerCallback

log = logging.getLogger(__name__)

HISTORY = 100   # values kept per metric for baselines
WARMUP = 3      # values needed before baseline-relative rules may fire
EMA_ALPHA = 0.2


class Trigger(str, enum.Enum):
    ABOVE = "above"                        # value > threshold
    BELOW = "below"                        # value < threshold
    ABOVE_BASELINE = "above_baseline"      # value > threshold x max(median of earlier values, floor)
    AWAY_FROM_AVERAGE = "away_from_average"  # |value - moving average| > threshold x |moving average|
    NOT_FINITE = "not_finite"              # NaN or infinite: the weights are about to be destroyed


@dataclass(frozen=True)
class Rule:
    metric: str
    trigger: Trigger
    threshold: float
    why: str
    floor: float = 0.0   # ABOVE_BASELINE: the baseline never counts as smaller than this
    skip_zeros: bool = False              # ABOVE_BASELINE: zeros say nothing about the scale; keep them out
    quiet_when: tuple[str, float] | None = None   # (metric, level): no warning while that metric is >= level


@dataclass(frozen=True)
class Alert:
    step: int
    metric: str
    value: float
    reference: float | None
    message: str


def default_rules(max_completion_length: int) -> list[Rule]:
    return [
        Rule("completions/mean_length", Trigger.ABOVE, 0.9 * max_completion_length,
             "completions run into the length cap (runaway length)"),
        Rule("completions/clipped_ratio", Trigger.ABOVE_BASELINE, 2.0,
             "the share of truncated completions doubled", floor=0.02),
        Rule("repetition/truncated_unique_token_ratio", Trigger.BELOW, 0.2,
             "truncated completions are repetitive"),
        Rule("repetition/ngram_4_most_repeated_frequency", Trigger.ABOVE, 0.3,
             "completions repeat the same 4-gram over and over"),
        Rule("entropy", Trigger.AWAY_FROM_AVERAGE, 0.3,
             "entropy moved more than 30% from its moving average (collapse or explosion)"),
        Rule("sampling/sampling_logp_difference/max", Trigger.ABOVE, 2.0,
             "vLLM and trainer log-probs disagree (training/inference mismatch)"),
        Rule("sampling/sampling_logp_difference/mean", Trigger.ABOVE_BASELINE, 2.0,
             "the mean vLLM/trainer log-prob gap doubled", floor=1e-3),
        Rule("sampling/importance_sampling_ratio/mean", Trigger.BELOW, 0.8,
             "importance ratios well below 1 (sampling the trainer does not reproduce: top_p, penalties)"),
        Rule("sampling/importance_sampling_ratio/min", Trigger.BELOW, 0.05,
             "some sequences are nearly off-policy"),
        # A group where every completion solved its task has identical rewards too: that is success, not collapse
        Rule("frac_reward_zero_std", Trigger.ABOVE, 0.8,
             "most groups have identical rewards: no learning signal",
             quiet_when=("sandbox/solved_ratio", 0.8)),
        # Steps whose groups all had identical rewards have a zero gradient; they are not its normal size
        Rule("grad_norm", Trigger.ABOVE_BASELINE, 5.0, "gradient norm spiked", skip_zeros=True),
        Rule("grad_norm", Trigger.NOT_FINITE, 0.0, "gradient norm is NaN/inf: the next optimizer step ruins the "
             "adapter (bf16 + sdpa + left padding did this on GPU; try --attn-implementation eager)"),
        Rule("loss", Trigger.NOT_FINITE, 0.0, "loss is NaN/inf"),
    ]


class CollapseMonitor(TrainerCallback):
    """Checks every logged metrics dict against ``rules``; ``alerts`` keeps what fired."""

    def __init__(self, max_completion_length: int, rules: list[Rule] | None = None,
                 path: str | Path | None = None):
        self.rules = rules if rules is not None else default_rules(max_completion_length)
        self.path = Path(path) if path is not None else None
        self.alerts: list[Alert] = []
        self._history: dict[str, deque[float]] = {}
        self._average: dict[str, float] = {}
        self._active: set[Rule] = set()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.check(logs, state.global_step)

    def check(self, logs: dict, step: int) -> list[Alert]:
        fired = []
        for rule in self.rules:
            value = logs.get(rule.metric)
            if not isinstance(value, (int, float)):
                continue
            if rule.trigger is Trigger.NOT_FINITE:
                reference, bad = None, not math.isfinite(value)
            elif not math.isfinite(value):
                continue
            else:
                reference = self._reference(rule)
                bad = _triggered(rule, value, reference) and not _quiet(rule, logs)
            if bad:
                if rule not in self._active:
                    self._active.add(rule)
                    fired.append(self._alert(rule, value, reference, step))
            else:
                self._active.discard(rule)
        for metric in {rule.metric for rule in self.rules}:
            value = logs.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._remember(metric, float(value))
        return fired

    def _reference(self, rule: Rule) -> float | None:
        history = self._history.get(rule.metric, ())
        if rule.trigger is Trigger.ABOVE_BASELINE:
            if rule.skip_zeros:
                history = [v for v in history if v != 0]
            return max(statistics.median(history), rule.floor) if len(history) >= WARMUP else None
        if rule.trigger is Trigger.AWAY_FROM_AVERAGE:
            return self._average.get(rule.metric) if len(history) >= WARMUP else None
        return rule.threshold

    def _remember(self, metric: str, value: float) -> None:
        self._history.setdefault(metric, deque(maxlen=HISTORY)).append(value)
        previous = self._average.get(metric)
        self._average[metric] = value if previous is None else (1 - EMA_ALPHA) * previous + EMA_ALPHA * value

    def _alert(self, rule: Rule, value: float, reference: float | None, step: int) -> Alert:
        shown = "" if reference is None else f" (reference {reference:.4g})"
        message = f"collapse warning at step {step}: {rule.metric} = {value:.4g}{shown}: {rule.why}"
        alert = Alert(step=step, metric=rule.metric, value=value, reference=reference, message=message)
        log.warning(message)
        self.alerts.append(alert)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as out:
                out.write(json.dumps(asdict(alert)) + "\n")
        return alert


def _quiet(rule: Rule, logs: dict) -> bool:
    if rule.quiet_when is None:
        return False
    metric, level = rule.quiet_when
    value = logs.get(metric)
    return isinstance(value, (int, float)) and value >= level


def _triggered(rule: Rule, value: float, reference: float | None) -> bool:
    if reference is None:
        return False
    if rule.trigger is Trigger.ABOVE:
        return value > rule.threshold
    if rule.trigger is Trigger.BELOW:
        return value < rule.threshold
    if rule.trigger is Trigger.ABOVE_BASELINE:
        return value > rule.threshold * reference
    return abs(value - reference) > rule.threshold * abs(reference)


class MetricsFile(TrainerCallback):
    """Appends every metrics dict the trainer logs (TRL's and the reward's) to a JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps({"step": state.global_step, **_jsonable(logs)}) + "\n")


def _jsonable(logs: dict) -> dict:
    return {k: v for k, v in logs.items() if isinstance(v, (int, float, str, bool)) or v is None}


class LoraDropoutOnly(TrainerCallback):
    """Switches off every dropout of the policy except LoRA's own (``--lora-dropout``).

    TRL's ``disable_dropout`` would do the first half but runs after PEFT has wrapped the model, so it also zeroes
    the adapter's dropout and ``--lora-dropout`` would do nothing. The base model's dropout stays off: it would
    make the trainer's log-probabilities noisy against the sampler's.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        import torch
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Dropout) and ".lora_dropout." not in f".{name}.":
                module.p = 0.0
