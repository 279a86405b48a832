"""``arc-rl``: ``train`` (GRPO with LoRA) and ``infer`` (sample, run, score, submit).

Every option of both commands comes from the config dataclasses in :mod:`arc_rl.config`; ``--config FILE``
reads the same options from YAML. Bad options fail here, in one line, before any model is loaded.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, InferConfig, TrainConfig, add_arguments, from_namespace


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arc-rl", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="GRPO fine-tuning with a LoRA adapter and the sandbox reward")
    add_arguments(train, TrainConfig)
    train.set_defaults(config_class=TrainConfig, run=_run_train)
    infer = commands.add_parser("infer", help="sample programs per task, execute, score, write a submission")
    add_arguments(infer, InferConfig)
    infer.set_defaults(config_class=InferConfig, run=_run_infer)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = from_namespace(args.config_class, args)
        args.run(config)
    except ConfigError as exc:
        print(f"arc-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run_train(config: TrainConfig) -> None:
    from .train import train
    train(config)


def _run_infer(config: InferConfig) -> None:
    from .infer import infer
    infer(config)


if __name__ == "__main__":
    sys.exit(main())
