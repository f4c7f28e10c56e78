"""Bad input through the three entry points: each case must exit non-zero with one message that names the
offending key or file, print no traceback, and leave every finished checkpoint and image as it was."""

import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_STUDENT
from diffusers import DDPMPipeline, DDPMScheduler
from PIL import Image
from safetensors.torch import load_file, save_file

from wgunet import WGUNet

STUDENT = "{" + ", ".join(f"{k}: {list(v) if isinstance(v, (list, tuple)) else v}" for k, v in TINY_STUDENT.items()) + "}"


@pytest.fixture(scope="module")
def world(tiny_teacher, tmp_path_factory):
    """Finished outputs that no bad input may touch, and the bad inputs themselves."""
    from wgunet.sampling.samplers import run_sampling
    from wgunet.training.config import load_config
    from wgunet.training.loop import train

    root = tmp_path_factory.mktemp("world")
    run = root / "run"
    train(load_config(None, [f"teacher={tiny_teacher}", f"student={STUDENT}", "data.sample_size=16",
                             "data.patches_per_image=4", "batch_size=4", "max_steps=2", "checkpoint_every=2",
                             f"output_dir={run}"]))
    samples = root / "samples"
    run_sampling(str(run / "model"), 3, samples, steps=2)
    (root / "empty").mkdir()
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"_class_name": "WGUNet", "sample_size": 16}')
    (corrupt / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64)
    badjson = root / "badjson"
    badjson.mkdir()
    (badjson / "config.json").write_text("{not json")
    truncated = root / "truncated"
    truncated.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(truncated / "a.jpg")
    (truncated / "b.jpg").write_bytes((truncated / "a.jpg").read_bytes()[:300])
    mixed = root / "mixed"
    mixed.mkdir()
    Image.new("RGB", (16, 16)).save(mixed / "a.png")
    Image.new("RGB", (8, 8)).save(mixed / "b.png")
    (root / "bad.npz").write_bytes(b"not an npz")
    (root / "afile").write_text("I am a file")
    (root / "bad.yaml").write_text("max_steps: [1, 2\n")
    (root / "typo.yaml").write_text("max_step: 5\n")
    foreign = root / "foreign"
    foreign.mkdir()
    Image.new("RGB", (16, 16)).save(foreign / "000001.png")  # a user's file named like ours, no record
    wide = root / "wide.npz"
    np.savez(wide, images=np.zeros((4, 8, 8, 3), np.uint8))
    wide_clip = root / "clip2"
    DDPMPipeline(unet=WGUNet(sample_size=16, **TINY_STUDENT), scheduler=DDPMScheduler(
        num_train_timesteps=50, clip_sample_range=2.0)).save_pretrained(wide_clip)
    (root / "latin1.yaml").write_bytes("max_steps: 5  # caf\xe9\n".encode("latin-1"))
    (root / "list.yaml").write_text("- max_steps: 5\n")
    (root / "twice.yaml").write_text("max_steps: 5\nlr: 0.001\nmax_steps: 6\n")
    listed = root / "listed"
    listed.mkdir()
    (listed / "config.json").write_text("[1, 2]")
    badindex = root / "badindex"
    shutil.copytree(run / "model", badindex)
    (badindex / "model_index.json").write_text("{not json")
    zerosteps = shutil.copytree(run / "model", root / "zerosteps")
    (zerosteps / "scheduler" / "scheduler_config.json").write_text('{"_class_name": "DDPMScheduler", "num_train_timesteps": 0}')
    nanmodel = shutil.copytree(run / "model", root / "nanmodel")
    weights = nanmodel / "unet" / "diffusion_pytorch_model.safetensors"
    save_file({k: v.fill_(float("nan")) for k, v in load_file(weights).items()}, weights)
    np.savez(root / "stats_nan.npz", mu=np.zeros(4), sigma=np.full((4, 4), np.nan))
    np.savez(root / "stats_neg.npz", mu=np.zeros(4), sigma=-np.eye(4))
    (root / "small").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / "small" / f"{i}.png")
    (root / "tab.yaml").write_text("max_steps: 5\n\tlr: 1\n")
    (root / "noclass").mkdir()
    (root / "noclass" / "config.json").write_text('{"sample_size": 16}')
    (root / "userconfig").mkdir()
    (root / "userconfig" / "config.yaml").write_text("my: notes\n")
    nocheckpoint = shutil.copytree(run, root / "nocheckpoint")
    shutil.rmtree(nocheckpoint / "checkpoints")
    (nocheckpoint / "model" / "my_notes.txt").write_text("mine")
    (root / "usergrid").mkdir()
    Image.new("RGB", (4, 4)).save(root / "usergrid" / "grid.png")
    return {"root": root, "run": run, "model": run / "model", "samples": samples, "teacher": tiny_teacher,
            "corrupt": corrupt, "badjson": badjson, "truncated": truncated, "mixed": mixed, "empty": root / "empty",
            "afile": root / "afile", "foreign": foreign, "listed": listed, "badindex": badindex,
            "nanmodel": nanmodel, "nocheckpoint": nocheckpoint, "zerosteps": zerosteps, "noclass": root / "noclass", "wide": wide, "clip2": wide_clip, "missing": root / "missing"}


def teacher_case(override: str, message: str) -> tuple:
    base = ["mode=teacher", "unet={block_out_channels: [16, 32], layers_per_block: 1, norm_num_groups: 8, "
            "down_block_types: [DownBlock2D, DownBlock2D], up_block_types: [UpBlock2D, UpBlock2D]}",
            "data.sample_size=16", "data.patches_per_image=4", "batch_size=4", "max_steps=2", "eval_every=0",
            "output_dir={root}/new_teacher"]
    return ("train.py", [*base, override], message)


def train_case(override: str, message: str) -> tuple:
    base = ["teacher={teacher}", f"student={STUDENT}", "data.sample_size=16", "data.patches_per_image=4",
            "batch_size=4", "max_steps=2", "eval_every=0", "output_dir={root}/new_run"]
    return ("train.py", [*base, override], message)


CASES = [train_case(override, message) for override, message in [
    ("max_steps=0", "max_steps must be a positive number of steps, got 0"),
    ("max_steps=-1", "max_steps must be a positive"),
    ("batch_size=0", "batch_size must be a positive"),
    ("batch_size=-4", "batch_size must be a positive"),
    ("lr=0", "lr must be positive"),
    ("lr=-0.1", "lr must be positive"),
    ("warmup_steps=-5", "warmup_steps must be >= 0"),
    ("gradient_accumulation_steps=0", "gradient_accumulation_steps must be at least 1"),
    ("checkpoint_every=0", "checkpoint_every must be a positive"),
    ("log_every=0", "log_every must be a positive"),
    ("keep_checkpoints=0", "keep_checkpoints must be >= 1"),
    ("keep_checkpoints=-1", "keep_checkpoints must be >= 1"),
    ("ema_decay=1.0", "ema_decay must be in [0, 1)"),
    ("ema_decay=2", "ema_decay must be in [0, 1)"),
    ("teacher_dtype=float8", "teacher_dtype must be one of"),
    ("mixed_precision=fp4", "mixed_precision must be one of"),
    ("loss.lambda_freq=-0.1", "loss.lambda_freq must be >= 0"),
    ("loss.lambda_spatial=-1", "loss.lambda_spatial must be >= 0"),
    ("loss.eps=0", "loss.eps must be positive"),
    ("adam_betas=[0.9,1.2]", "adam_betas must be two numbers in [0, 1)"),
    ("grad_clip=-1", "grad_clip must be >= 0"),
    ("data.sample_size=0", "data.sample_size must be a positive"),
    ("data.sample_size=32", "data.sample_size is 32 but the teacher"),
    ("data.num_workers=-1", "data.num_workers must be >= 0 (or null"),
    ("max_stepz=3", "unknown config key 'max_stepz' (did you mean 'max_steps'?)"),
    ("loss.lamda_freq=0", "unknown config key 'loss.lamda_freq'"),
    ("student.block_out_channel=[8]", "unknown config key 'student.block_out_channel'"),
    ("max_steps=ten", "max_steps must be int"),
    ("mode=student", "mode must be 'distill' or 'teacher'"),
    ("teacher={missing}", "does not exist"),
    ("teacher={empty}", "neither a diffusers model folder"),
    ("teacher={corrupt}", "could not load the WGUNet"),
    ("teacher={model}", "the teacher must be a diffusers UNet2DModel"),
    ("data.source={empty}", "no images in"),
    ("data.source={missing}", "does not exist"),
    ("data.source={truncated}", "b.jpg' is not a readable image"),
    ("output_dir={run}", "already holds a run: pass --resume"),
    ("data.source=patches", "name the built-in set with its split: patches:train"),
    ("log_with=neptune", "log_with must be one of auto, none, tensorboard"),
    ("push_to_hub=true", "push_to_hub=true needs hub_model_id=NAME/MODEL"),
    ("output_dir={afile}", "is a file, not a folder"),
    ("batch_size=100000", "cannot fill one batch of 100000"),
]] + [teacher_case(override, message) for override, message in [
    # the model and scheduler sections, built before any work
    ("unet.norm_num_groups=7", "describes no working model: ValueError: num_channels (16) must be divisible by num_groups (7)"),
    ("unet.block_out_channels=[16]", "describes no working model: ValueError: Must provide the same number"),
    ("unet.block_out_channels=[]", "describes no working model: IndexError"),
    ("unet.down_block_types=[DownBlock2D, DownBlockX]", "describes no working model: ValueError: DownBlockX does not exist"),
    ("unet.layers_per_block=0", "describes no working model"),
    ("data.sample_size=17", "at 17x17 describes no working model"),
    ("unet.sample_size=32", "unet.sample_size 32 differs from data.sample_size 16"),
    ("scheduler.num_train_timesteps=0", "scheduler.num_train_timesteps must be at least 1, got 0"),
    ("scheduler.beta_schedule=cosine", "describes no DDPM schedule: NotImplementedError: cosine"),
    ("scheduler.beta_start=-1", "gives noise levels (betas) outside (0, 1)"),
    ("scheduler.prediction_type=velocity", "scheduler.prediction_type must be one of epsilon, v_prediction, sample"),
]] + [train_case(override, message) for override, message in [
    ("student.norm_num_groups=7", "student (WGUNet arguments"),
    ("student.block_out_channels=[16]", "student (WGUNet arguments"),
    ("student.wavelet=3", "student (WGUNet arguments"),
    # numbers at the boundary
    ("seed=-1", "seed must be in [0, 2^32), got -1"),
    ("seed=4294967296", "seed must be in [0, 2^32)"),
    ("loss.eps=.inf", "loss.eps must be a finite number, got inf"),
    ("lr=.nan", "lr must be a finite number, got nan"),
]] + [
    # outputs recorded and never mixed, nothing written over a user's files, empty paths refused
    ("train.py", ["output_dir=", "max_steps=2"], "output_dir is empty: give it a value"),
    ("train.py", ["output_dir=''", "max_steps=2"], "output_dir must be a folder path, not empty"),
    ("train.py", ["data.source=''", "max_steps=2"], "data.source must be patches:train, an image folder"),
    ("train.py", ["output_dir={root}/userconfig", "max_steps=2"], "holds a config.yaml that no run wrote there"),
    ("train.py", ["output_dir={nocheckpoint}", "--resume"], "holds model but no checkpoint to resume from"),
    ("sample.py", ["{model}", "--out", ""], "expected a path, got an empty string"),
    ("sample.py", ["{model}", "--num-images", "2", "--out", "{root}/usergrid"], "holds grid.png that sample.py did not write"),
    ("sample.py", ["{nanmodel}", "--out", "{root}/s20"], "hold NaN or Inf values"),
    ("sample.py", ["{zerosteps}", "--out", "{root}/s21"], "describes no DDPM schedule (num_train_timesteps is 0)"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--generated", "{samples}", "--no-fid", "--out", "{root}/e32"],
     "two sets are named"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--reference", "{samples}", "--fid-ref", "{root}/stats_nan.npz",
                 "--features", "teacher", "--teacher", "{teacher}", "--out", "{root}/e33"], "NaN or Inf values"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--reference", "{samples}", "--fid-ref", "{root}/stats_neg.npz",
                 "--features", "teacher", "--teacher", "{teacher}", "--out", "{root}/e34"], "negative eigenvalue"),
    ("eval.py", ["probe", "{model}", "--reference", "{mixed}/b.png", "--out", "{root}/e35"], "is a file, not an image set"),
    ("eval.py", ["probe", "{teacher}", "--reference", "{root}/small", "--out", "{root}/e36"],
     "the probe noises real images at the models' size, 16x16"),
    ("train.py", ["{root}/latin1.yaml"], "is not valid YAML (in UTF-8)"),
    ("train.py", ["{root}/tab.yaml"], "is not valid YAML (in UTF-8): line 2, column 1: found character"),
    ("sample.py", ["{noclass}", "--out", "{root}/s22"], "names no model class (_class_name)"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--fid-ref", "{root}/nothere.npz", "--features", "teacher",
                 "--teacher", "{teacher}", "--out", "{root}/e37"], "nothere.npz' do not exist: make them with"),
    ("train.py", ["{root}/list.yaml"], "must hold a mapping of keys to values, not a list"),
    ("train.py", ["{root}/twice.yaml"], "key max_steps given twice: keep one"),
    ("sample.py", ["{model}", "--seed", "-1", "--out", "{root}/s12"], "a seed must be in [0, 2^32), got -1"),
    ("sample.py", ["{model}", "--seed", "4294967296", "--out", "{root}/s13"], "a seed must be in [0, 2^32)"),
    ("sample.py", ["{model}", "--scheduler", "ddpm", "--steps", "1001", "--out", "{root}/s14"],
     "--steps 1001 is more than the 100 steps the model was trained with"),
    ("sample.py", ["{model}", "--device", "cuda", "--out", "{root}/s15"], "this machine has no accelerator"),
    ("sample.py", ["{model}", "--device", "cuda:1", "--out", "{root}/s16"], "this machine has no accelerator"),
    ("sample.py", ["{model}", "--device", "gpu", "--out", "{root}/s17"], "'gpu' is not a device name"),
    ("sample.py", ["{listed}", "--out", "{root}/s18"], "config.json"),
    ("sample.py", ["{badindex}", "--out", "{root}/s19"], "model_index.json"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--bootstrap", "-5", "--out", "{root}/e24"], "must be >= 0, got -5"),
    ("eval.py", ["finc", "--test", "{samples}", "--reference", "{samples}", "--rho", "nan", "--out", "{root}/e25"],
     "expected a finite number, got 'nan'"),
    ("eval.py", ["finc", "--test", "{samples}", "--reference", "{samples}", "--sigma", "0", "--out", "{root}/e26"],
     "must be > 0, got 0"),
    ("eval.py", ["finc", "--test", "{samples}", "--reference", "{samples}", "--rho", "-1", "--out", "{root}/e27"],
     "must be > 0, got -1"),
    ("eval.py", ["stig", "train", "--generated", "{samples}", "--lr", "0", "--out", "{root}/e28"], "must be > 0, got 0"),
    ("eval.py", ["stig", "train", "--generated", "{samples}", "--lr", "nan", "--out", "{root}/e29"], "expected a finite"),
    ("eval.py", ["stig", "train", "--generated", "{samples}", "--lambda-gan", "-1", "--out", "{root}/e30"],
     "must be >= 0, got -1"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--no-fid", "--fid-ref", "{root}/bad.npz", "--out", "{root}/e31"],
     "--fid-ref gives FID its reference statistics and --no-fid skips FID"),
    ("train.py", ["{missing}.yaml"], "not found"),
    ("train.py", ["{root}/bad.yaml"], "not valid YAML"),
    ("train.py", ["{root}/typo.yaml"], "unknown config key 'max_step'"),
    ("sample.py", ["{missing}", "--out", "{root}/s1"], "does not exist"),
    ("sample.py", ["{empty}", "--out", "{root}/s2"], "neither a diffusers model folder"),
    ("sample.py", ["{corrupt}", "--out", "{root}/s3"], "could not load the WGUNet"),
    ("sample.py", ["{badjson}", "--out", "{root}/s4"], "not valid JSON"),
    ("sample.py", ["{afile}", "--out", "{root}/s5"], "is a file"),
    ("sample.py", ["{model}", "--num-images", "0", "--out", "{root}/s6"], "argument --num-images: must be at least 1, got 0"),
    ("sample.py", ["{model}", "--steps", "0", "--out", "{root}/s7"], "must be at least 1"),
    ("sample.py", ["{model}", "--batch-size", "-1", "--out", "{root}/s8"], "must be at least 1"),
    ("sample.py", ["{model}", "--scheduler", "euler", "--out", "{root}/s9"], "invalid choice: 'euler'"),
    ("sample.py", ["{model}", "--dtype", "float64", "--out", "{root}/s10"], "invalid choice: 'float64'"),
    ("sample.py", ["{model}", "--num-images", "3", "--steps", "2", "--out", "{samples}"], "already holds 3 images: pass --resume"),
    ("sample.py", ["{model}", "--num-images", "3", "--steps", "3", "--resume", "--out", "{samples}"], "other settings (steps)"),
    ("sample.py", ["{model}", "--resume", "--overwrite", "--out", "{samples}"], "pass one"),
    ("sample.py", ["{model}", "--num-images", "2", "--resume", "--out", "{foreign}"], "did not write there (000001.png)"),
    ("sample.py", ["{model}", "--out", "{afile}"], "is a file, not a folder"),
    ("sample.py", ["{clip2}", "--scheduler", "dpm++", "--out", "{root}/s11"], "use --scheduler ddim or ddpm"),
    ("eval.py", ["spectrum", "--generated", "{missing}", "--out", "{root}/e1"], "does not exist"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--reference", "{empty}", "--out", "{root}/e2"], "no images in"),
    ("eval.py", ["spectrum", "--generated", "{mixed}", "--reference", "{samples}", "--out", "{root}/e3"], "different sizes"),
    ("eval.py", ["spectrum", "--generated", "{root}/bad.npz", "--out", "{root}/e4"], "is not an .npz archive"),
    ("eval.py", ["spectrum", "--generated", "{wide}", "--reference", "{samples}", "--no-fid", "--out", "{root}/e5"],
     "spectra compare sets of one size"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--features", "clip", "--out", "{root}/e6"], "invalid choice: 'clip'"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--reference", "{samples}", "--no-fid", "--out", "{afile}"],
     "{afile}"),
    ("eval.py", ["probe", "{model}", "--timesteps", "10,5000", "--out", "{root}/e7"],
     "probe timesteps must lie in [0, 99]"),
    ("eval.py", ["probe", "{missing}", "--out", "{root}/e8"], "does not exist"),
    ("eval.py", ["probe", "{model}", "--timesteps", "ten", "--out", "{root}/e9"], "expected comma-separated integers"),
    ("eval.py", ["finc", "--test", "{missing}", "--reference", "{samples}", "--out", "{root}/e10"], "does not exist"),
    ("eval.py", ["finc", "--test", "{samples}", "--reference", "{empty}", "--features", "pixels", "--out", "{root}/e11"],
     "no images in"),
    ("eval.py", ["stig", "apply", "--model", "{missing}", "--input", "{samples}", "--out", "{root}/e12"],
     "is not a STIG refiner"),
    ("eval.py", ["stig", "train", "--generated", "{missing}", "--out", "{root}/e13"], "does not exist"),
    ("eval.py", ["stig", "train", "--generated", "{wide}", "--reference", "{samples}", "--out", "{root}/e14"], "differ in shape"),
    ("eval.py", ["report", "{missing}", "--teacher", "{teacher}", "--out", "{root}/e15"], "does not exist"),
    ("eval.py", ["report", "{model}", "--num-images", "1", "--out", "{root}/e16"], "--num-images must be at least 2"),
    ("eval.py", ["probe", "{model}", "--probe-images", "0", "--out", "{root}/e19"], "must be at least 1, got 0"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--reference", "patches:test", "--out", "{root}/e20"],
     "splits patches:train and patches:heldout"),
    ("eval.py", ["report", "{model}", "--teacher", "{teacher}", "--reference", "{empty}", "--out", "{root}/e17"],
     "no images in"),
    ("eval.py", ["report", "{model}", "--teacher", "{teacher}", "--stig-refiner", "{empty}", "--out", "{root}/e18"],
     "is not a STIG refiner"),
    ("eval.py", ["report", "{model}", "--out", "{root}/e21"], "the student makes 16px images and the teacher 32px"),
    ("eval.py", ["fid-ref", "{missing}", "--out", "{root}/e22.npz"], "does not exist"),
    ("eval.py", ["spectrum", "--generated", "{samples}", "--reference", "{samples}", "--fid-ref", "{root}/bad.npz",
                 "--features", "teacher", "--teacher", "{teacher}", "--out", "{root}/e23"], "is not FID reference statistics"),
    ("eval.py", ["unknown"], "invalid choice: 'unknown'"),
]


def fill(text: str, world: dict) -> str:
    for key, value in world.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for f in folders for p in f.rglob("*")
            if p.is_file() and not p.name.startswith(".lock")}


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


@pytest.mark.parametrize("script, argv, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_gets_one_clear_error_and_changes_nothing(world, capsys, monkeypatch, script, argv, message):
    before = snapshot(world["run"], world["samples"])
    args = [fill(a, world) for a in argv]
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as exit_:  # any other exception escaping is a traceback for the user
        runpy.run_path(script, run_name="__main__")
    err = capsys.readouterr().err
    assert exit_.value.code not in (0, None), err
    assert "Traceback" not in err
    assert fill(message, world) in err, err[-1500:]
    assert snapshot(world["run"], world["samples"]) == before


def bad_input_table() -> str:
    """The table docs/reliability.md shows: each case's entry point, arguments and the message it must print."""
    rows = ["| entry point | arguments (`+ X`: a tiny distillation or teacher run's settings, and X) | the one line names |",
            "|---|---|---|"]
    for script, argv, message in CASES:
        tiny = script == "train.py" and len(argv) > 6  # train_case / teacher_case: a tiny run, then the bad setting
        shown = ("+ " if tiny else "") + " ".join(a if a else "''" for a in (argv[-1:] if tiny else argv))
        shown = shown.replace("|", "\\|")
        rows.append(f"| `{script}` | `{shown}` | {message.replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


def test_the_reliability_page_shows_this_table():
    """docs/reliability.md holds the table these tests check: `python tests/test_bad_input.py` prints it."""
    assert bad_input_table() in Path("docs/reliability.md").read_text()


if __name__ == "__main__":
    print(bad_input_table())
