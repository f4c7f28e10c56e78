"""A training run's folder, one helper for both training loops (distillation in training.py, STIG in stig.py).

    config.yaml           the settings; a --resume with other settings is refused (only ``may_change`` may differ)
    checkpoints/step-N/   written as a hidden folder and renamed when complete; the last ``keep`` are kept
    metrics.jsonl         one JSON row per logged step, trimmed back to the step a run resumes from
    .lock                 one writer at a time (files.folder_lock, taken by the caller)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

from wgunet.common.errors import UserError
from wgunet.common.files import remove_scratch, sync_tree, trim_log, write_text
from wgunet.training.config import read_yaml
from wgunet.training.state import StateError

T = TypeVar("T")


class RunError(UserError, RuntimeError):
    """A run that cannot start or go on; the message says why and what to change."""


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete ``checkpoints/step-N`` folders, oldest first by step number (unfinished writes are hidden
    folders and never listed; step-1000000 sorts after step-999999)."""
    found = [p for p in (Path(output_dir) / "checkpoints").glob("step-*") if p.name[5:].isdigit() and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _note(message: str) -> None:
    """A line on stderr from the first of several processes (RANK 0 under torchrun / accelerate launch) only."""
    if os.environ.get("RANK", "0") == "0":
        print(message, file=sys.stderr)


class Run:
    """The folder of one training run: ``what`` names it in messages, ``elsewhere`` says how to pick another."""

    def __init__(self, path: str | Path, what: str, elsewhere: str, outputs: tuple[str, ...] = ()):
        self.path, self.what, self.elsewhere, self.outputs = Path(path), what, elsewhere, outputs
        self.log_file = None

    def start(self, config: dict[str, Any], resume: bool, may_change: tuple[str, ...] = ()) -> None:
        """Refuse to write into an existing run without ``resume``, and to resume it with other settings than
        ``may_change``; print each setting a resume changes, and say when there is nothing to resume from."""
        remove_scratch(self.path)  # the caller holds the folder's lock: what a killed writer left is stale
        remove_scratch(self.path / "checkpoints")
        exists = bool(list_checkpoints(self.path)) or any((self.path / name).exists() for name in self.outputs)
        if exists and not resume:
            raise RunError(f"{self.path} already holds a {self.what}: pass --resume to continue it, or {self.elsewhere}")
        if resume and not list_checkpoints(self.path):
            written = [name for name in self.outputs if (self.path / name).exists()]
            if written:  # its checkpoints were removed: training again would replace what is there
                raise RunError(f"{self.path} holds {', '.join(written)} but no checkpoint to resume from: a resume "
                               f"would train from step 0 and replace it; move it away, or {self.elsewhere}")
            _note(f"{self.path} has no checkpoint yet: starting from step 0")
        if not exists:
            if (self.path / "config.yaml").exists() and not (self.path / "metrics.jsonl").exists():
                raise RunError(f"{self.path} holds a config.yaml that no {self.what} wrote there: a run writes its own "
                               f"config.yaml into its folder; {self.elsewhere}")
            return
        try:
            recorded = read_yaml((self.path / "config.yaml").read_text())
        except (OSError, yaml.YAMLError) as error:
            raise RunError(f"{self.path} holds a {self.what} without a readable config.yaml ({error}): it cannot be "
                           f"checked for a resume; delete it to start again, or {self.elsewhere}") from None
        now, before = _flatten(json.loads(json.dumps(config))), _flatten(recorded or {})
        # a key the run's config.yaml lacks came with a later version of this package: the run had no such setting
        changed = sorted(k for k in now.keys() & before.keys() if now[k] != before[k])
        changes = {k: f"{k}: {before[k]!r} -> {now[k]!r}" for k in changed}
        refused = [k for k in changed if not any(k == m or k.startswith(m + ".") for m in may_change)]
        if refused:
            raise RunError(f"{self.path} was trained with other settings ({', '.join(changes[k] for k in refused)}): "
                           f"resume with the same ones (only {', '.join(may_change)} may change), or {self.elsewhere}")
        if changed:
            _note(f"resuming {self.path} with changed settings: {', '.join(changes.values())}")

    def write_config(self, config: dict[str, Any]) -> None:
        write_text(self.path / "config.yaml", yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))

    def resume_point(self, read: Callable[[Path], T]) -> tuple[Path | None, T | None]:
        """The newest checkpoint that ``read`` can read, and what it read; unreadable ones are named and skipped."""
        found = list_checkpoints(self.path)
        for folder in reversed(found):
            try:
                return folder, read(folder)
            except StateError as error:
                print(f"warning: skipping checkpoint {folder.name}: {error}", file=sys.stderr)
        if found:
            raise RunError(f"no checkpoint in {str(self.path / 'checkpoints')!r} is readable: delete the folder to "
                           "start again, or restore a checkpoint")
        return None, None

    # ---- checkpoints: a hidden folder, renamed when every process has written its part --------------------------
    def staging(self, step: int) -> Path:
        return self.path / "checkpoints" / f".step-{step:06d}.tmp"

    def begin_checkpoint(self, step: int) -> Path:
        """An empty staging folder for checkpoint ``step`` (call on one process, then let every process write)."""
        staging = self.staging(step)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        return staging

    def publish_checkpoint(self, step: int, keep: int) -> Path:
        """Sync the staging folder, rename it to ``step-N`` and delete all but the newest ``keep`` checkpoints."""
        staging, final = self.staging(step), self.path / "checkpoints" / f"step-{step:06d}"
        sync_tree(staging)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in list_checkpoints(self.path)[:-keep]:
            shutil.rmtree(old)
        return final

    def save_checkpoint(self, step: int, keep: int, write: Callable[[Path], None]) -> Path:
        """One process: ``write(folder)`` fills the checkpoint, which then appears whole under its final name."""
        write(self.begin_checkpoint(step))
        return self.publish_checkpoint(step, keep)

    # ---- the metrics log and the NaN stop --------------------------------------------------------------------------
    def open_log(self, step: int) -> None:
        """Append to ``metrics.jsonl``, after dropping the rows past ``step`` (a resumed run redoes them)."""
        self.path.mkdir(parents=True, exist_ok=True)
        trim_log(self.path / "metrics.jsonl", step)
        self.log_file = open(self.path / "metrics.jsonl", "a")

    def log(self, row: dict[str, Any]) -> None:
        self.log_file.write(json.dumps(row) + "\n")
        self.log_file.flush()

    def close_log(self) -> None:
        if self.log_file is not None:
            self.log_file.close()

    def interrupted(self) -> KeyboardInterrupt:
        """The interrupt, saying truthfully what a --resume continues from."""
        last = latest_checkpoint(self.path)
        if last is None:
            return KeyboardInterrupt(f"no checkpoint yet in {self.path}: a --resume starts from step 0")
        return KeyboardInterrupt(f"{last} is kept; continue from it with --resume")

    def non_finite(self, step: int, terms: str, advice: str) -> RunError:
        """The error for a NaN or Inf loss: what was non-finite, the last checkpoint that is safe, what to change."""
        last = latest_checkpoint(self.path)
        return RunError(f"non-finite loss at step {step} ({terms}). Nothing was saved after "
                        f"{last if last else 'the start'}; {advice}, then continue with --resume")
