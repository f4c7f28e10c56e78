"""kill -9 at random moments of training, sampling and eval.py report; nothing finished may be lost.

    .venv/bin/python bench/kill_test.py [--rounds 20] [--seed 0] [--tools train,sample,report] [--out runs/kill_test]

For each tool, on tiny models made here: one uninterrupted reference run; then the same command is started
again and again in one folder (resumed), each time SIGKILLed after a random delay; a run that finished before
its kill does not count, and the folder is started over. After every kill the folder is checked: every PNG
decodes, every JSON parses, every listed checkpoint is readable and the folder's lock is free. After the last
kill the command runs to the end with --resume, and its result must match the reference run's: training
weights bit-identical, sampled images equal (up to 1 in a few pixels, as between batch sizes), the report
complete with the same sets scored. Prints one line per tool; exits non-zero if any check failed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
STUDENT = "{block_out_channels: [16, 32], layers_per_block: 1, attention_resolutions: [8], attention_head_dim: 16, norm_num_groups: 8, gate_hidden: 8}"


def make_teacher(folder: Path) -> Path:
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    if not (folder / "model_index.json").is_file():
        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=16, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                           down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                           up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8)
        DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=100)).save_pretrained(folder)
    return folder


def commands(tool: str, out: Path, teacher: Path, student: Path) -> tuple[list[str], list[str]]:
    """(first command, resume command) writing into ``out``."""
    python = sys.executable
    if tool == "train":
        base = [python, "train.py", f"teacher={teacher}", f"student={STUDENT}", "data.sample_size=16",
                "data.patches_per_image=8", "batch_size=8", "max_steps=40", "checkpoint_every=5", "log_every=1",
                "warmup_steps=2", f"output_dir={out}"]
        return base, base + ["--resume"]
    if tool == "sample":
        base = [python, "sample.py", str(student), "--num-images", "96", "--steps", "20", "--batch-size", "8", "--out", str(out)]
        return base, base + ["--resume"]
    base = [python, "eval.py", "report", str(student), "--teacher", str(teacher), "--num-images", "48", "--steps", "10",
            "--timesteps", "10,50", "--bootstrap", "10", "--features", "teacher", "--finc-features", "pixels",
            "--stig-steps", "40", "--out", str(out)]
    return base, base


def check_folder(folder: Path) -> list[str]:
    """Problems a kill may not leave behind."""
    from wgunet.common.files import FolderBusy, folder_lock
    from wgunet.training.loop import read_checkpoint
    from wgunet.training.runs import list_checkpoints

    problems = []
    try:
        with folder_lock(folder, "check"):
            pass
    except FolderBusy as error:
        problems.append(f"lock still held after the kill: {error}")
    for png in folder.rglob("*.png"):
        if png.name.startswith("."):
            continue
        try:
            with Image.open(png) as image:
                image.load()
        except OSError as error:
            problems.append(f"{png}: {error}")
    for path in folder.rglob("*.json"):
        if not path.name.startswith("."):
            try:
                json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                problems.append(f"{path}: {error}")
    for checkpoint in list_checkpoints(folder):
        try:
            read_checkpoint(checkpoint, 0)
        except Exception as error:  # noqa: BLE001 - any failure is a finding here
            problems.append(f"{checkpoint}: {error}")
    return problems


def matches_reference(tool: str, out: Path, reference: Path) -> bool:
    """Training: bit-identical weights. Sampling: the same images (a resumed batch holds other images, which may
    move a pixel by 1 at the uint8 boundary, as batch size may). Report: the same sets scored, all finite."""
    if tool == "train":
        from safetensors.torch import load_file

        name = "model/unet/diffusion_pytorch_model.safetensors"
        a, b = load_file(out / name), load_file(reference / name)
        return a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    if tool == "sample":
        a, b = (np.load(folder / "samples.npz")["images"].astype(int) for folder in (out, reference))
        return a.shape == b.shape and np.abs(a - b).max() <= 1 and (a == b).mean() > 0.999
    a, b = (json.loads((folder / "metrics.json").read_text()) for folder in (out, reference))
    sets, reference_sets = a["spectrum"]["sets"], b["spectrum"]["sets"]
    values = [s["value"] for scores in sets.values() for s in scores["scores"].values()]
    return sets.keys() == reference_sets.keys() and all(np.isfinite(values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="kills per tool")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--tools", default="train,sample,report")
    parser.add_argument("--out", default="runs/kill_test")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(args.out)
    teacher = make_teacher(root / "teacher")
    failed = False
    for tool in args.tools.split(","):
        student = root / "reference-train" / "model"
        if tool != "train" and not student.is_dir():
            subprocess.run(commands("train", root / "reference-train", teacher, student)[0], check=True,
                           capture_output=True)
        reference = root / f"reference-{tool}"
        shutil.rmtree(reference, ignore_errors=True)  # timed afresh: kill delays are drawn within its duration
        started = time.perf_counter()
        subprocess.run(commands(tool, reference, teacher, student)[0], check=True, capture_output=True)
        full = time.perf_counter() - started
        out = root / f"killed-{tool}"
        shutil.rmtree(out, ignore_errors=True)
        first, again = commands(tool, out, teacher, student)
        problems, finished_early, kills, fresh = [], 0, 0, True
        while kills < args.rounds and finished_early < 3 * args.rounds:
            process = subprocess.Popen(first if fresh else again, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.1, 1.0) * full)
            if process.poll() is not None:  # it finished before the kill: start over, so every kill hits a live run
                finished_early += 1
                shutil.rmtree(out)
                fresh = True
                continue
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills, fresh = kills + 1, False
            problems += [f"kill {kills}: {p}" for p in check_folder(out)]
        final = subprocess.run(again, capture_output=True, text=True)
        if final.returncode != 0:
            problems.append(f"final --resume failed: {final.stderr[-500:]}")
        elif not matches_reference(tool, out, reference):
            problems.append("the resumed result differs from the uninterrupted one")
        failed |= bool(problems)
        print(f"{tool}: {kills} kills of a running process ({finished_early} runs finished before their kill and "
              "were started over), "
              f"{'OK' if not problems else 'FAILED'}; resumed result equal to the uninterrupted run: "
              f"{not any('differs' in p or 'failed' in p for p in problems)}", flush=True)
        for problem in problems[:10]:
            print("   ", problem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
