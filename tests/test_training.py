import collections
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from diffusers import DDPMPipeline
from diffusers.training_utils import EMAModel
from launch import free_port
from PIL import Image
from safetensors.torch import load_file

from wgunet.training.config import load_config
from wgunet.training.loop import TrainingError, build_models, train
from wgunet.training.monitor import read_evaluations
from wgunet.training.runs import RunError, latest_checkpoint


def metrics(run: Path) -> list[dict]:
    """The loss rows of metrics.jsonl (evaluations during training are rows of their own, with eval/... keys)."""
    rows = [row for line in (run / "metrics.jsonl").read_text().splitlines() if "loss" in (row := json.loads(line))]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # wall time differs between runs


def test_distillation_exports_a_student_that_adopts_the_teacher_schedule(tiny_run, tiny_teacher):
    config = load_config(None, tiny_run)
    exported = train(config)
    run = Path(config.output_dir)
    assert exported == run / "model"
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-000003", "step-000006"]
    pipeline = DDPMPipeline.from_pretrained(exported, trust_remote_code=True)  # its code travels in unet/
    assert type(pipeline.unet).__name__ == "WGUNet"
    teacher_schedule = DDPMPipeline.from_pretrained(tiny_teacher).scheduler.config
    assert pipeline.scheduler.config.prediction_type == "v_prediction" == teacher_schedule.prediction_type
    assert pipeline.scheduler.config.num_train_timesteps == 100
    # the aligners train with the student but stay out of the export
    weights = load_file(exported / "unet" / "diffusion_pytorch_model.safetensors")
    assert not any("aligner" in k for k in weights)
    assert any("aligner" in k for k in load_file(run / "checkpoints" / "step-000006" / "model.safetensors"))
    images = pipeline(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 16, 16, 3)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"ddpm", "spatial", "freq", "loss", "lr"} <= set(rows[0])


def test_resumed_run_repeats_the_uninterrupted_losses_and_weights(tiny_run, tmp_path):
    config = load_config(None, tiny_run)
    train(config)
    run = Path(config.output_dir)
    uninterrupted = metrics(run)
    # stop after step 3: drop what came later, then resume
    interrupted = tmp_path / "interrupted"
    shutil.copytree(run, interrupted)
    shutil.rmtree(interrupted / "checkpoints" / "step-000006")
    shutil.rmtree(interrupted / "model")
    # (its metrics.jsonl still holds steps 4-6, as when a run dies after logging past its last checkpoint)
    with pytest.raises(RunError, match="already holds a run: pass --resume"):
        train(load_config(None, tiny_run + [f"output_dir={interrupted}"]))
    train(load_config(None, tiny_run + [f"output_dir={interrupted}"]), resume=True)
    assert metrics(interrupted) == uninterrupted
    for name in ("model.safetensors", "model/unet/diffusion_pytorch_model.safetensors"):
        a = load_file(run / "checkpoints" / "step-000006" / name)
        b = load_file(interrupted / "checkpoints" / "step-000006" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_all_three_loss_terms_fall_distilling_from_the_shipped_teacher(tmp_path):
    config = load_config("configs/default.yaml", ["max_steps=80", "batch_size=16", "checkpoint_every=80", "log_every=1",
                                                  "warmup_steps=5", "data.patches_per_image=16", f"output_dir={tmp_path}"])
    train(config)
    rows = metrics(tmp_path)
    for term in ("ddpm", "spatial", "freq"):
        first = sum(r[term] for r in rows[:10]) / 10
        last = sum(r[term] for r in rows[-10:]) / 10
        assert last < 0.7 * first, (term, first, last)


@pytest.mark.parametrize("log_every", [1, 4])
def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tiny_run, monkeypatch, log_every):
    """Read at every step or only at log and checkpoint steps, the first non-finite step is the one named."""
    import wgunet.training.loop as training

    calls = {"n": 0}
    real = training.loss_terms

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            terms["freq"] = terms["freq"] * float("nan")
        return terms

    monkeypatch.setattr(training, "loss_terms", poisoned)
    config = load_config(None, tiny_run + [f"log_every={log_every}"])
    with pytest.raises(RunError, match=r"non-finite loss at step 5 .*freq nan.*step-000003.*--resume"):
        train(config)
    assert latest_checkpoint(config.output_dir).name == "step-000003"
    DDPMPipeline.from_pretrained(latest_checkpoint(config.output_dir) / "model", trust_remote_code=True)  # still loads


TINY_UNET2D = dict(block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4, attention_head_dim=8,
                   down_block_types=["DownBlock2D", "AttnDownBlock2D"], up_block_types=["AttnUpBlock2D", "UpBlock2D"])


def test_a_unet2dmodel_student_is_tapped_distilled_and_loads_without_wgunet(tiny_run):
    config = load_config(None, tiny_run + ["student_class=UNet2DModel", f"student={TINY_UNET2D}"])
    model, _, teacher, _, _ = build_models(config)
    assert type(model.student).__name__ == "UNet2DModel"
    # its own blocks are tapped as the teacher's are: the deepest feature per stage and resolution (8px down, mid,
    # 16px up) is aligned with the teacher's
    assert model.pairs == {"down.1": "down.1", "mid": "mid", "up.1": "up.1"}
    exported = train(config)
    rows = metrics(Path(config.output_dir))
    assert all(r["spatial"] > 0 and r["freq"] > 0 for r in rows)
    assert "wavelet-gated-unet" not in (exported / "README.md").read_text()
    # a diffusers pipeline folder that diffusers loads and runs without this package
    script = ("import sys; from diffusers import DDPMPipeline; p = DDPMPipeline.from_pretrained(sys.argv[1]); "
              "assert 'wgunet' not in sys.modules; "
              "print(type(p.unet).__name__, p(batch_size=1, num_inference_steps=2, output_type='np').images.shape)")
    result = subprocess.run([sys.executable, "-c", script, str(exported)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["UNet2DModel", "(1,", "16,", "16,", "3)"]


def test_an_unknown_student_class_is_named():
    from wgunet.training.config import ConfigError

    with pytest.raises(ConfigError, match="student_class must be one of WGUNet, UNet2DModel, got 'ResNet'"):
        load_config(None, ["student_class=ResNet"])


def test_switched_off_terms_skip_the_teacher_and_its_aligners(tiny_run):
    model, _, teacher, taps, _ = build_models(load_config(None, tiny_run + ["loss.lambda_spatial=0", "loss.lambda_freq=0"]))
    assert teacher is None and taps is None and len(model.aligners) == 0
    model, _, teacher, _, _ = build_models(load_config(None, tiny_run + ["loss.features=[mid]"]))
    assert list(model.pairs) == ["mid"] and teacher is not None


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate holds one mixed precision per process: a run in another one resets it, and leaves it reset."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_teacher_mode_trains_a_plain_unet_with_the_ddpm_loss_in_bf16_and_warns_where_the_cpu_emulates_it(
        tmp_path, monkeypatch, capsys, fresh_accelerate_state):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    config = load_config("configs/teacher.yaml", [
        "unet.block_out_channels=[8,16,16,16]", "unet.norm_num_groups=8", "unet.attention_head_dim=8", "max_steps=2",
        "batch_size=4", "data.patches_per_image=2", f"output_dir={tmp_path}", "log_every=1", "mixed_precision=bf16"])
    exported = train(config)
    pipeline = DDPMPipeline.from_pretrained(exported)
    assert type(pipeline.unet).__name__ == "UNet2DModel" and list(pipeline.unet.config.block_out_channels) == [8, 16, 16, 16]
    assert set(metrics(tmp_path)[0]) == {"step", "ddpm", "loss", "lr"}
    assert "bfloat16 is emulated" in capsys.readouterr().err


def test_train_py_reports_bad_input_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "train.py", "max_step=3"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown config key 'max_step' (did you mean 'max_steps'?)"
    result = subprocess.run([sys.executable, "train.py", f"teacher={tmp_path}", f"output_dir={tmp_path / 'r'}"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "neither a diffusers model folder" in result.stderr


MULTIPROCESS_SCRIPT = """
import os, sys, torch
from safetensors.torch import save_file
from wgunet.training.config import load_config
import wgunet.training.loop as training

captured = {}
real = training.build_models
def capture(config):
    built = real(config)
    captured["model"] = built[0]
    return built
training.build_models = capture
import gc
from accelerate import Accelerator
from torch.nn.parallel import DistributedDataParallel
end_training = Accelerator.end_training
def counted_end_training(self):  # it destroys the process group: the DDP wrappers alive then are counted
    alive = sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())
    open(f"{sys.argv[1]}/ddp_alive{os.environ['RANK']}", "w").write(str(alive))
    end_training(self)
Accelerator.end_training = counted_end_training
config = load_config(None, sys.argv[2:])
training.train(config)
rank = os.environ['RANK']
save_file({k: v.contiguous() for k, v in captured["model"].state_dict().items()}, f"{sys.argv[1]}/rank{rank}.safetensors")
from wgunet.common.cli import leave_process_group
leave_process_group()  # as the entry points do
"""


@pytest.mark.slow
def test_two_cpu_processes_keep_identical_replicas(tiny_run, tmp_path):
    script = tmp_path / "run.py"
    script.write_text(MULTIPROCESS_SCRIPT)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(script), str(tmp_path), *tiny_run, "max_steps=4", "checkpoint_every=2", "batch_size=4",
               "eval_every=2", "eval.num_images=5", "eval.steps=2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # no DDP reducer outlives the process group (freed after it, Gloo's destructor can hang under the GIL)
    assert [(tmp_path / f"ddp_alive{rank}").read_text() for rank in (0, 1)] == ["0", "0"]
    run = Path(load_config(None, tiny_run).output_dir)
    saved = load_file(run / "checkpoints" / "step-000004" / "model.safetensors")
    assert all(torch.equal(saved[k], a[k]) for k in a)
    assert (run / "checkpoints" / "step-000004" / "process_1.safetensors").is_file()  # each process's generators
    DDPMPipeline.from_pretrained(run / "model", trust_remote_code=True)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert [e["step"] for e in read_evaluations(run)] == [2, 4]
    # the evaluation split its 5 images over the 2 processes and gathered them in order: one process draws the same
    from test_monitor import grid_of_sampled

    grid = np.asarray(Image.open(run / "evals" / "step-4" / "grid.png"))
    assert np.array_equal(grid, grid_of_sampled(run / "model", 5, tmp_path / "samples"))


@pytest.mark.parametrize("max_steps, warmup, reached_at", [(50, 100, 5), (1000, 100, 100), (1000, 20, 20)])
def test_warmup_is_capped_at_a_tenth_of_the_run_so_short_runs_reach_their_learning_rate(max_steps, warmup, reached_at):
    from wgunet.training.loop import build_lr_schedule

    config = load_config(None, [f"max_steps={max_steps}", f"warmup_steps={warmup}", "lr=0.01"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    schedule = build_lr_schedule(optimizer, config)
    rates = []
    for _ in range(max_steps):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert max(rates) == pytest.approx(0.01) and rates.index(max(rates)) == reached_at
    assert rates[reached_at - 1] < 0.01


def test_a_constant_schedule_holds_the_learning_rate_after_its_warmup():
    from wgunet.training.loop import build_lr_schedule

    config = load_config(None, ["max_steps=1000", "warmup_steps=20", "lr=0.01", "lr_schedule=constant"])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    schedule = build_lr_schedule(optimizer, config)
    rates = []
    for _ in range(config.max_steps):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert rates[10] == pytest.approx(0.005) and rates[20:] == [pytest.approx(0.01)] * 980


def test_metrics_and_hyperparameters_reach_tensorboard(tiny_run):
    """log_with=tensorboard: every logged row of metrics.jsonl is in the event files, and the config is stored as
    hyper-parameters, the evaluation during training as scalars and its grid as an image; an uninstalled tracker
    is named with the package to install."""
    pytest.importorskip("tensorboard", reason="tensorboard is in the [dev] extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = load_config(None, tiny_run + ["log_with=tensorboard", "eval_every=3", "eval.num_images=4", "eval.steps=2"])
    train(config)
    run = Path(config.output_dir)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(run / "wgunet"), size_guidance={"images": 0}).Reload()
    for key in ("loss", "ddpm", "lr", "eval/high_frequency_ratio", "eval/lfd_stig"):
        assert [e.step for e in events.Scalars(key)] == [r["step"] for r in rows if key in r]
        assert [e.value for e in events.Scalars(key)] == pytest.approx([r[key] for r in rows if key in r], rel=1e-6)
    assert [(e.step, e.width, e.height) for e in events.Images("eval/grid")] == [(3, 38, 38), (6, 38, 38)]
    (stored,) = run.glob("wgunet/*/hparams.yml")  # Accelerate's copy of what it gave TensorBoard's add_hparams
    hparams = yaml.safe_load(stored.read_text())
    assert hparams["loss.lambda_freq"] == config.loss.lambda_freq and hparams["max_steps"] == config.max_steps
    assert hparams["student.block_out_channels"] == str(config.student["block_out_channels"])
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(TrainingError, match="log_with=wandb needs its package: pip install wandb"):
            train(load_config(None, tiny_run + ["log_with=wandb", f"output_dir={run}_wandb"]))


def test_every_export_carries_a_model_card(tiny_run):
    """README.md in each exported model folder: front matter a Hub reader parses, the config, how to load it; a
    Hub-id teacher, or the Hub model a teacher is fine-tuned from, becomes the base model (a local one is not a Hub
    reference)."""
    from huggingface_hub import ModelCard

    from wgunet.training.card import model_card

    config = load_config(None, tiny_run)
    folder = train(config)
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "diffusers" and card.data.base_model is None and "distillation" in card.data.tags
    assert f"step {config.max_steps}" in card.text and "trust_remote_code=True" in card.text and "max_steps: 6" in card.text
    assert DDPMPipeline.from_pretrained(folder, trust_remote_code=True).unet.config.sample_size == 16  # the card does not disturb loading
    hub = load_config(None, tiny_run + ["teacher=google/ddpm-cifar10-32"])
    assert ModelCard(model_card(hub, 1, 10)).data.base_model == "google/ddpm-cifar10-32"
    fine_tuned = model_card(load_config("configs/teacher.yaml", ["init_from=google/ddpm-cifar10-32"]), 1, 10)
    assert ModelCard(fine_tuned).data.base_model == "google/ddpm-cifar10-32"
    assert "starting from the weights of `google/ddpm-cifar10-32`" in fine_tuned


def test_push_to_hub_sends_the_final_export_and_a_failed_push_keeps_it(tiny_run, monkeypatch):
    """Offline: HfApi's two calls are recorded instead of sent. A push that fails is one line; the export stays."""
    from huggingface_hub import HfApi

    from wgunet.training.hub import HubError, push_export

    sent = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **options: sent.append(("create", repo_id)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, folder_path, repo_id, **options: sent.append(
        ("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir()))))
    final = train(load_config(None, tiny_run + ["push_to_hub=true", "hub_model_id=me/student"]))
    assert sent == [("create", "me/student"), ("upload", "me/student", ["README.md", "model_index.json", "scheduler", "unet"])]

    def offline(self, **options):
        raise ConnectionError("no network")

    monkeypatch.setattr(HfApi, "upload_folder", offline)
    with pytest.raises(HubError, match=r"could not push .*ConnectionError: no network.*the local export is kept"):
        push_export(final, "me/student")
    assert (final / "model_index.json").is_file()
    with pytest.raises(HubError, match="not an exported model folder"):
        push_export(final.parent, "me/student")


HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__format__", "cpu", "numpy")


def host_reads_of(work, monkeypatch) -> collections.Counter:
    """How often ``work()`` reads a tensor back to the host (each such read waits for the device to finish)."""
    counts = collections.Counter()
    for name in HOST_READS:
        def counted(self, *args, _real=getattr(torch.Tensor, name), _name=name, **kwargs):
            counts[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        work()
    finally:
        monkeypatch.undo()
    return counts


def test_the_training_steps_between_log_steps_never_wait_for_the_device(tiny_run, monkeypatch):
    """Runs of 4 and 12 steps that log and checkpoint only at their end (one epoch each) read tensors back to the
    host equally often: the 8 extra steps read nothing."""
    def run(steps: int) -> collections.Counter:
        config = load_config(None, tiny_run + [f"max_steps={steps}", f"log_every={steps}", f"checkpoint_every={steps}",
                                               "data.patches_per_image=16", "log_with=none",
                                               f"output_dir={Path(tiny_run[-1].split('=', 1)[1]) / str(steps)}"])
        return host_reads_of(lambda: train(config), monkeypatch)

    short, long = run(4), run(12)
    assert short and long == short, (short, long)


def test_accumulation_over_a_loader_it_does_not_divide_resumes_exactly_and_logs_each_group_mean(tiny_run, tmp_path,
                                                                                                 monkeypatch):
    """84 patches in batches of 8 are 10 batches an epoch; accumulating 3, Accelerate closes each epoch's last group
    after 1 batch: 4 optimizer steps an epoch. A run resumed from step 4 repeats the uninterrupted one, and each
    logged loss is the mean over its group's batches (3, 3, 3, 1, ...)."""
    import wgunet.training.loop as training

    losses, real = [], training.loss_terms
    monkeypatch.setattr(training, "loss_terms", lambda *a, **k: losses.append(t := real(*a, **k)) or t)
    overrides = tiny_run + ["gradient_accumulation_steps=3", "max_steps=8", "checkpoint_every=4"]
    config = load_config(None, overrides)
    train(config)
    run = Path(config.output_dir)
    rows = metrics(run)
    groups = [3, 3, 3, 1] * 2
    starts = np.cumsum([0] + groups)
    for row, first, last in zip(rows, starts, starts[1:]):
        assert row["loss"] == pytest.approx(float(np.mean([t["loss"].item() for t in losses[first:last]])), rel=1e-6)
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000008")
    shutil.rmtree(resumed / "model")
    train(load_config(None, overrides + [f"output_dir={resumed}"]), resume=True)
    assert metrics(resumed) == rows
    a, b = (load_file(r / "checkpoints" / "step-000008" / "model.safetensors") for r in (run, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


# load_state_dict onto meta parameters copies nothing and says so for every tensor; the test checks placement only
@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_a_restored_state_lives_on_the_models_device(tiny_run):
    """Checkpoints are read on the CPU; every restored tensor (weights, optimizer moments, EMA shadow weights) is
    put where the model is (here the meta device stands in for a GPU)."""
    from wgunet.training.loop import read_checkpoint, restore

    config = load_config(None, tiny_run)
    train(config)
    state = read_checkpoint(latest_checkpoint(config.output_dir), 0)
    model = build_models(config).trainable
    ema = EMAModel(model.student.parameters(), foreach=True)
    model.to("meta")
    optimizer = torch.optim.AdamW(model.parameters(), fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    restore(state, Path("checkpoint"), model, optimizer, schedule, ema, torch.Generator(), Path("run"))
    restored = [*model.parameters(), *ema.shadow_params,
                *(t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor))]
    assert len(restored) > 3 * len(list(model.parameters())) and {t.device.type for t in restored} == {"meta"}


def test_every_gradient_has_its_parameters_layout():
    """DDP copies each gradient into a bucket laid out as its parameter and warns when the strides differ (as a 1x1
    aligner's did after a channels-last feature)."""
    from wgunet.training.loop import loss_terms

    config = load_config("configs/default.yaml", ["batch_size=2"])
    models = build_models(config)
    loss_terms(models.trainable, models.scheduler, models.teacher, models.taps, torch.rand(2, 3, 32, 32) * 2 - 1,
               torch.Generator().manual_seed(0), config)["loss"].backward()
    mismatched = [n for n, p in models.trainable.named_parameters() if p.grad is not None and p.grad.stride() != p.stride()]
    assert not mismatched


def test_resume_continues_the_run_as_it_was_configured_and_prints_what_the_command_line_changes(tiny_run, capsys):
    """Omitted keys come from the run's config.yaml (not from the default config), --resume stands anywhere, and
    every key the command line changes is printed, allowed or refused."""
    from wgunet.training.config import load_run_config
    from wgunet_cli.train import build_parser

    run = tiny_run[-1].split("=", 1)[1]
    assert load_run_config(None, [f"output_dir={run}"], "configs/default.yaml", resume=True).max_steps == 1000  # no run yet
    train(load_config(None, tiny_run))
    config = load_run_config(None, [f"output_dir={run}"], "configs/default.yaml", resume=True)
    assert config == load_config(None, tiny_run)  # the run's own settings, max_steps 6 and its tiny teacher
    for argv in (["configs/default.yaml", "--resume", "max_steps=8"], ["configs/default.yaml", "lr=1", "--resume", "max_steps=8"],
                 ["--resume", "max_steps=8"], ["max_steps=8", "--resume"]):
        args = build_parser().parse_intermixed_args(argv)
        assert args.resume and "max_steps=8" in args.overrides + [args.config], argv
    train(load_run_config(None, [f"output_dir={run}", "max_steps=8", "lr=0.002"], "configs/default.yaml", True), resume=True)
    assert "with changed settings: lr: 0.001 -> 0.002, max_steps: 6 -> 8" in capsys.readouterr().err
    with pytest.raises(RunError, match=r"other settings \(batch_size: 8 -> 4\)"):
        train(load_run_config(None, [f"output_dir={run}", "batch_size=4"], "configs/default.yaml", True), resume=True)


def test_an_interrupt_and_a_resume_without_checkpoints_say_what_was_kept(tiny_run, monkeypatch, capsys):
    import wgunet.training.loop as training

    real, calls = training.loss_terms, []

    def interrupted_at_step_5(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "loss_terms", interrupted_at_step_5)
    with pytest.raises(KeyboardInterrupt, match="step-000003 is kept; continue from it with --resume"):
        train(load_config(None, tiny_run))
    calls.clear()
    fresh = tiny_run + [f"output_dir={tiny_run[-1].split('=', 1)[1]}_fresh", "checkpoint_every=100"]
    with pytest.raises(KeyboardInterrupt, match="no checkpoint yet in .*: a --resume starts from step 0"):
        train(load_config(None, fresh), resume=True)
    assert "has no checkpoint yet: starting from step 0" in capsys.readouterr().err


def test_the_keys_docs_say_a_resume_may_change_are_the_codes():
    import re

    from wgunet.training.loop import MAY_CHANGE_ON_RESUME

    listed = Path("docs/training.md").read_text().split("Only these may change:")[1].split(";")[0]
    assert re.findall(r"`([^`]+)`", listed) == list(MAY_CHANGE_ON_RESUME)
