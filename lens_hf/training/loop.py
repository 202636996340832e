"""The training loop every script shares: gradient accumulation, per-step schedule, logging to the tracker and
to `logs/train_log.jsonl`, periodic evaluation, checkpoints, exact resume, and a stop on a non-finite loss.

A training stream (`data.StreamLoader`, `--streaming`) has no epochs and no length: it runs for `max_steps`, and
its position (the images consumed) is saved in every checkpoint and restored on resume instead of skipping the
batches of an epoch.

Randomness inside a step (MAE masks, D4 augmentation) comes from a generator seeded by (seed, step, rank)
(`lens_hf.seeds`), so a resumed run draws exactly what the uninterrupted run drew; dropout/drop-path use torch's global RNG, whose state
`save_state`/`load_state` carry."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..seeds import seeded_generator
from .checkpoint import (TrainState, last_good_checkpoint, load_checkpoint, load_data_state, resolve_checkpoint,
                         save_checkpoint)

logger = logging.getLogger(__name__)

TRAIN_LOG = "train_log.jsonl"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/Inf: training stops and the checkpoints written so far stay as they are."""


STEP_STREAM = "train-step"
STREAM_STATE_KEY = "train_stream"  # the training stream's position in a checkpoint's data_state.json


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of micro-step `step` on `rank` (augmentation, masks): seeded by (seed, step, rank) only."""
    return seeded_generator(seed, STEP_STREAM, step, rank, device=device)


class TrainLog:
    """Per-step records (`step`, `loss`, `lr`, and evaluations) in `logs/train_log.jsonl`, main process only.
    On resume, records after the checkpoint's step are dropped: they belong to the interrupted future."""

    def __init__(self, output_dir, enabled: bool, resume_step: int | None):
        self.path = Path(output_dir) / "logs" / TRAIN_LOG
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")


def read_train_log(output_dir) -> list[dict]:
    path = Path(output_dir) / "logs" / TRAIN_LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []


def non_finite_message(output_dir: Path, losses: list, state: TrainState) -> str:
    """The NaN stop's message: where it happened and the newest checkpoint that is really good (finite weights,
    finite losses up to it); newer ones that are not are named with the reason."""
    logged = {r["step"]: r["loss"] for r in read_train_log(output_dir) if "loss" in r}
    logged[state.global_step + 1] = float("nan")  # this step's loss, computed with the current weights
    good, passed_over = last_good_checkpoint(output_dir, logged)
    skipped = f" (not good: {'; '.join(passed_over)})" if passed_over else ""
    return (f"non-finite loss ({losses}) at step {state.global_step + 1}, epoch {state.epoch}: training stopped. "
            f"Last good checkpoint: {good or 'none'}{skipped}. "
            "Lower the learning rate, clip gradients (--max_grad_norm) or check the data.")


def fit(
    *,
    accelerator,
    model,
    optimizer,
    scheduler,
    train_dataloader,
    run_args,
    total_steps: int,
    loss_fn: Callable,
    evaluate_fn: Callable | None = None,
    identity: dict | None = None,
) -> TrainState:
    """Train `model` for `total_steps` optimizer steps.

    Args:
        loss_fn: `(model, batch, generator) -> loss` on this process's batch; `generator` is the micro-step's
            (see `step_generator`). The runner passes the task's loss hook here (`Task.loss`).
        evaluate_fn: `(model) -> dict[str, float]`, called on every process (gather inside), every
            `run_args.eval_steps` steps or at the end of each epoch; its numbers go to the tracker and the log.
        identity: the run's identity (`run_folder.run_identity`), saved in every checkpoint and checked on resume.
    """
    output_dir = Path(run_args.output_dir)
    state = TrainState()
    # An endless stream (`data.StreamLoader`) resumes from the position its checkpoint stored, not by skipping
    # batches of an epoch; it has no length and no epochs.
    stream = getattr(train_dataloader, "is_stream", False)
    resume_path = resolve_checkpoint(output_dir, run_args.resume_from_checkpoint)
    if resume_path is not None:
        state = load_checkpoint(accelerator, resume_path, scheduler, identity)
        if stream:
            train_dataloader.load_state_dict(load_data_state(resume_path, STREAM_STATE_KEY))
        logger.info("resumed from %s at step %d", resume_path, state.global_step)
    elif run_args.resume_from_checkpoint == "latest":
        logger.info("resume_from_checkpoint=latest: no checkpoint in %s yet, starting fresh", output_dir)
    log = TrainLog(output_dir, accelerator.is_main_process, state.global_step if resume_path else None)
    progress = tqdm(
        total=total_steps,
        initial=state.global_step,
        desc="train",
        disable=not accelerator.is_main_process or run_args.disable_progress_bar,
        dynamic_ncols=True,
    )
    model.train()
    window_losses: list[float] = []
    micro_step = state.global_step * run_args.gradient_accumulation_steps

    while state.global_step < total_steps:
        train_dataloader.set_epoch(state.epoch)
        batches = train_dataloader
        if state.batches_in_epoch and not stream:
            batches = accelerator.skip_first_batches(train_dataloader, state.batches_in_epoch)
        finished_epoch = True
        for batch in batches:
            state.batches_in_epoch += 1
            generator = step_generator(run_args.seed, micro_step, accelerator.process_index, accelerator.device)
            micro_step += 1
            with accelerator.accumulate(model):
                loss = loss_fn(model, batch, generator)
                all_losses = accelerator.gather(loss.detach().float().reshape(1))
                if not torch.isfinite(all_losses).all():
                    raise NonFiniteLossError(non_finite_message(output_dir, all_losses.tolist(), state))
                accelerator.backward(loss)
                if accelerator.sync_gradients and run_args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), run_args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            window_losses.append(all_losses.mean().item())
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            state.global_step += 1
            step_loss = sum(window_losses[-run_args.gradient_accumulation_steps:]) / min(
                len(window_losses), run_args.gradient_accumulation_steps
            )
            lr = optimizer.param_groups[-1]["lr"]
            log.write({"step": state.global_step, "epoch": state.epoch, "loss": step_loss, "lr": lr})
            progress.update(1)
            if state.global_step % run_args.logging_steps == 0 or state.global_step == total_steps:
                mean_loss = sum(window_losses) / len(window_losses)
                accelerator.log({"train/loss": mean_loss, "train/lr": lr, "train/epoch": state.epoch}, step=state.global_step)
                progress.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{lr:.2e}")
                window_losses.clear()
            if evaluate_fn is not None and run_args.eval_steps and state.global_step % run_args.eval_steps == 0:
                _evaluate(accelerator, model, evaluate_fn, state, log)
            if run_args.save_steps and state.global_step % run_args.save_steps == 0:
                data_state = {STREAM_STATE_KEY: train_dataloader.state_dict()} if stream else None
                save_checkpoint(accelerator, output_dir, state, run_args.save_total_limit, scheduler, identity,
                                data_state=data_state)
            if state.global_step >= total_steps:
                finished_epoch = not stream and state.batches_in_epoch >= len(train_dataloader)
                break
        if finished_epoch:
            if evaluate_fn is not None and not run_args.eval_steps:
                _evaluate(accelerator, model, evaluate_fn, state, log)
            state.epoch += 1
            state.batches_in_epoch = 0
    progress.close()
    return state


def _evaluate(accelerator, model, evaluate_fn, state: TrainState, log: TrainLog) -> dict:
    """Evaluation runs on a fork of the RNG (DataLoader iterators draw their base seed from it), so how often a
    run evaluates does not change its dropout / drop-path draws, hence its weights."""
    model.eval()
    cuda = [accelerator.device.index or 0] if accelerator.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=cuda):
        metrics = evaluate_fn(model)
    model.train()
    scalars = {f"eval/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    accelerator.log(scalars, step=state.global_step)
    log.write({"step": state.global_step, "epoch": state.epoch, **scalars})
    return metrics


def total_training_steps(run_args, batches_per_epoch: int) -> int:
    """Optimizer steps of the run: `max_steps`, or epochs x updates per epoch."""
    if run_args.max_steps and run_args.max_steps > 0:
        return run_args.max_steps
    updates_per_epoch = max(1, batches_per_epoch // run_args.gradient_accumulation_steps)
    return max(1, math.ceil(run_args.num_train_epochs * updates_per_epoch))
