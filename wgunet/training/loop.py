"""The training loop: spectrum-aware distillation of a WG-UNet student (or plain DDPM training of a teacher).

Accelerate owns devices, processes, mixed precision, gradient accumulation and the resumable state.
Everything random in a step (noise, timesteps, flips) comes from one generator per process that is
saved with the checkpoint, so a run stopped and resumed repeats the uninterrupted run's losses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.models.modeling_utils import ModelMixin
from diffusers.optimization import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from wgunet.common.compilation import compiled
from wgunet.common.devices import DTYPES, allow_tf32, emulated_bfloat16_warning
from wgunet.common.errors import UserError
from wgunet.common.files import atomic_folder, folder_lock, write_text
from wgunet.common.processes import check_launch
from wgunet.evaluation.features import teacher_features
from wgunet.model import STUDENT_CLASSES
from wgunet.model.autoencoder import Autoencoder, complete_export, write_reference
from wgunet.model.portable import make_portable
from wgunet.model.prediction import training_target
from wgunet.model.unet import WGUNet
from wgunet.training.card import model_card
from wgunet.training.config import TrainConfig, check_model, eval_reference, to_dict
from wgunet.training.data import build_dataset, loader_workers
from wgunet.training.hub import push_export
from wgunet.training.losses import frequency_loss, spatial_loss
from wgunet.training.monitor import TrainingEvaluation, TrainingMonitor
from wgunet.training.runs import Run, list_checkpoints
from wgunet.training.state import StateError, load_tree, random_states, save_tree, set_random_states
from wgunet.training.teacher import FeatureTaps, load_teacher, pair_by_resolution, trainable_teacher

# what a --resume may change: how long and how often, where, and what the non-finite-loss advice asks for
MAY_CHANGE_ON_RESUME = ("max_steps", "checkpoint_every", "log_every", "keep_checkpoints", "output_dir",
                        "data.num_workers", "data.verify", "lr", "mixed_precision", "grad_clip", "log_with", "push_to_hub",
                        "hub_model_id", "eval_every", "eval", "gradient_checkpointing", "compile")


class TrainingError(UserError, RuntimeError):
    """A run that cannot go on; the message says why and what to change."""


def build_student(student_class: str, arguments: dict, teacher: ModelMixin) -> ModelMixin:
    """A ``student_class`` student shaped as its teacher (sample size and channels: for a latent teacher, its latent
    space), with the config's ``arguments`` over that."""
    shape = {k: teacher.config[k] for k in ("sample_size", "in_channels", "out_channels")}
    arguments = {**shape, **arguments}
    check_model("student", STUDENT_CLASSES[student_class], arguments, arguments["sample_size"])
    return STUDENT_CLASSES[student_class](**arguments)


class Distiller(nn.Module):
    """The student plus 1x1 conv aligners that map its features onto the teacher's (aligners are not exported)."""

    def __init__(self, student: nn.Module, pairs: dict[str, str], channels: dict[str, tuple[int, int]]):
        super().__init__()
        self.student = student
        self.pairs = pairs  # student feature key -> teacher feature key
        self.aligners = nn.ModuleDict(
            {_module_key(s): nn.Conv2d(channels[s][0], channels[s][1], kernel_size=1) for s in pairs}
        )
        self.taps = student_taps(student) if pairs else None

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The student's prediction, and its aligned features keyed by the teacher feature they match."""
        prediction, features = run_student(self.student, self.taps, noisy, timesteps, bool(self.pairs))
        # contiguous: a channels-last feature (after an attention block) gives its 1x1 aligner a channels-last weight
        # gradient, whose strides DDP's gradient buckets do not match
        aligned = {t: self.aligners[_module_key(s)](features[s].contiguous()) for s, t in self.pairs.items()}
        return prediction, aligned


def student_taps(student: nn.Module) -> FeatureTaps | None:
    """A WG-UNet returns its stages' features itself; any other student (a UNet2DModel) is tapped as the teacher is,
    so both sides' features are the same blocks' outputs, keyed "down.i", "mid", "up.i"."""
    return None if isinstance(student, WGUNet) else FeatureTaps(student)


def run_student(student: nn.Module, taps: FeatureTaps | None, noisy: torch.Tensor, timesteps: torch.Tensor | int,
                features: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(prediction, the stage features when asked: ``taps`` of a student that is not a WG-UNet) of any student."""
    if isinstance(student, WGUNet):
        out = student(noisy, timesteps, return_features=features)
        return out.sample, out.features or {}
    return student(noisy, timesteps).sample, taps.pop() if features else {}


def _module_key(feature: str) -> str:
    return feature.replace(".", "_")  # ModuleDict keys cannot hold dots


MIXED_PRECISION = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def teacher_dtype(config: TrainConfig) -> torch.dtype:
    """The dtype the frozen teacher is held in: ``teacher_dtype``, or with "auto" the run's mixed precision (the
    teacher has several times the student's MACs, so its forward is most of a step)."""
    if config.teacher_dtype == "auto":
        return MIXED_PRECISION[config.mixed_precision] or torch.float32
    return DTYPES[config.teacher_dtype]


class Models(NamedTuple):
    trainable: nn.Module  # the Distiller (student + aligners), or the UNet2DModel a teacher run trains
    scheduler: DDPMScheduler
    teacher: UNet2DModel | None  # None without a teacher or when no term needs it (DDPM-only distillation)
    taps: FeatureTaps | None
    autoencoder: Autoencoder | None  # a latent teacher's: the student learns in its latent space


def build_models(config: TrainConfig) -> Models:
    """The models ``config.mode`` trains with."""
    if config.mode == "teacher":
        unet = trainable_teacher({"sample_size": config.data.sample_size, **config.unet}, config.scheduler,
                                 config.init_from)
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        return Models(unet, DDPMScheduler(**config.scheduler), None, None, None)
    teacher, scheduler, autoencoder = load_teacher(config.teacher, teacher_dtype(config))
    check_sizes(config, teacher, autoencoder)
    # The student adopts the teacher's schedule and prediction_type, and its latent space if it has one: both then
    # predict the same thing.
    student = build_student(config.student_class, config.student, teacher)
    if config.gradient_checkpointing:
        student.enable_gradient_checkpointing()
    if config.loss.lambda_spatial == 0 and config.loss.lambda_freq == 0:
        return Models(Distiller(student, {}, {}), scheduler, None, None, autoencoder)
    distiller, taps = attach_teacher(student, teacher, config.loss.features)
    return Models(distiller, scheduler, teacher, taps, autoencoder)


def check_sizes(config: TrainConfig, teacher: UNet2DModel, autoencoder: Autoencoder | None) -> None:
    """data.sample_size is the pixel size; a latent teacher's UNet works at that over the autoencoder's factor."""
    factor = autoencoder.factor if autoencoder else 1
    if teacher.config.sample_size * factor != config.data.sample_size:
        latent = f" ({teacher.config.sample_size}px latents, x{factor} by its autoencoder)" if autoencoder else ""
        raise TrainingError(f"data.sample_size is {config.data.sample_size} but the teacher {config.teacher!r} works at "
                            f"{teacher.config.sample_size * factor}px{latent}: set "
                            f"data.sample_size={teacher.config.sample_size * factor}")
    if autoencoder and "sample_size" in config.student:
        raise TrainingError(f"the teacher {config.teacher!r} is a latent model: leave student.sample_size out (the "
                            f"student works at the teacher's latent size, {teacher.config.sample_size})")


def attach_teacher(student: nn.Module, teacher: UNet2DModel, stages: tuple[str, ...]) -> tuple[Distiller, FeatureTaps]:
    """Tap the teacher, pair the features by resolution and build the aligners (one dry pass reads the shapes)."""
    taps, shapes = FeatureTaps(teacher), student_taps(student)
    with torch.no_grad():
        size = student.config.sample_size
        probe = torch.zeros(1, student.config.in_channels, size, size, device=student.device)
        _, student_features = run_student(student, shapes, probe, 0, features=True)
        teacher(probe.to(teacher.device, teacher.dtype), 0)
        teacher_features = taps.pop()
    if shapes is not None:
        shapes.remove()
    pairs = dict(pair_by_resolution(student_features, teacher_features, stages))
    if not pairs:
        raise TrainingError("the student and the teacher share no feature resolution: check student.block_out_channels")
    channels = {s: (student_features[s].shape[1], teacher_features[t].shape[1]) for s, t in pairs.items()}
    return Distiller(student, pairs, channels), taps


def loss_terms(model, scheduler, teacher, taps, images, generator: torch.Generator, config: TrainConfig,
               autoencoder: Autoencoder | None = None) -> dict[str, torch.Tensor]:
    """One batch's loss and its terms: L = l_ddpm * L_DDPM + l_s * L_spatial + l_f * L_freq (Yang et al., CVPR 2023).

    With a latent teacher's ``autoencoder`` the diffusion's x0 is the (frozen) encoding of the images.
    """
    # drawn where the batch is (the generator lives on the model's device): no copy between host and device
    on = dict(generator=generator, device=generator.device)
    flip = torch.rand(images.shape[0], **on) < (0.5 if config.data.hflip else 0.0)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    x0 = autoencoder.encode(images) if autoencoder is not None else images
    noise = torch.randn(x0.shape, **on)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), **on)
    noisy = scheduler.add_noise(x0, noise, t)
    target = training_target(scheduler, x0, noise, t)
    output = model(noisy, t)
    prediction, aligned = output if isinstance(output, tuple) else (output.sample, {})
    terms = {"ddpm": F.mse_loss(prediction.float(), target.float())}
    if teacher is not None:
        # the teacher runs in the run's mixed precision, as Accelerate runs the student (norms kept in float32)
        mixed = MIXED_PRECISION[config.mixed_precision]
        with torch.no_grad(), torch.autocast(x0.device.type, dtype=mixed or torch.float32, enabled=mixed is not None):
            teacher_prediction = teacher(noisy.to(teacher.dtype), t).sample
            teacher_features = taps.pop()
        pairs = [(aligned[k], teacher_features[k]) for k in aligned] + [(prediction, teacher_prediction)]
        loss = config.loss
        if loss.lambda_spatial:  # a term switched off (lambda 0) is not computed
            terms["spatial"] = spatial_loss(pairs)
        if loss.lambda_freq:
            clean = x0 if loss.freq_reference == "latent" else images  # see LossConfig.freq_reference
            terms["freq"] = frequency_loss(pairs, clean, loss.alpha, loss.eps, loss.freq_weight, loss.focal_alpha,
                                           loss.focal_log, loss.focal_batch)
    lambdas = {"ddpm": config.loss.lambda_ddpm, "spatial": config.loss.lambda_spatial, "freq": config.loss.lambda_freq}
    terms["loss"] = sum(lambdas[k] * terms[k] for k in terms)
    return terms


@contextlib.contextmanager
def ema_weights(ema: EMAModel, model: nn.Module):
    """``model`` holds the EMA weights inside the block, its trained weights again after it."""
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield model
    finally:
        ema.restore(model.parameters())


def export_pipeline(model: nn.Module, ema: EMAModel, scheduler: DDPMScheduler, folder: Path, card: str,
                    autoencoder: Autoencoder | None) -> None:
    """Save the EMA weights as a DDPMPipeline folder (model_index.json, unet/, scheduler/) with its model card; a
    latent student's folder names its autoencoder (wgunet.model.autoencoder), which the final export copies in."""
    with ema_weights(ema, model):
        DDPMPipeline(unet=model, scheduler=scheduler).save_pretrained(folder)
    make_portable(folder)
    write_text(folder / "README.md", card)
    if autoencoder is not None:
        write_reference(autoencoder, folder)


def evaluate(accelerator: Accelerator, monitor: TrainingMonitor, run: Run, model: nn.Module, ema: EMAModel,
             scheduler: DDPMScheduler, step: int, card: Callable[[TrainingEvaluation], str]) -> TrainingEvaluation | None:
    """The EMA model's evaluation (wgunet.training.monitor), logged; the checkpoint of this step gets the scores in its card."""
    with ema_weights(ema, model):
        evaluation = monitor(accelerator, model, scheduler, step)
    if evaluation is not None:
        run.log({"step": step, **evaluation.scalars()})
        accelerator.log(evaluation.scalars(), step=step)
        checkpoint = run.path / "checkpoints" / f"step-{step:06d}"
        if checkpoint.is_dir():
            write_text(checkpoint / "model" / "README.md", card(evaluation))
    return evaluation


def save_checkpoint(accelerator: Accelerator, run: Run, step: int, model: nn.Module, optimizer, lr_schedule,
                    ema: EMAModel, generator: torch.Generator, exported: nn.Module, scheduler: DDPMScheduler,
                    keep: int, card: str, autoencoder: Autoencoder | None) -> None:
    """``checkpoints/step-N/``: weights, optimizer, schedule, EMA and per-process generators (safetensors + JSON,
    never pickle), and ``model/``, the EMA student as a pipeline folder. The folder gets its name only when every
    process has written its part (runs.Run), so a folder named step-N is always complete."""
    if accelerator.is_main_process:
        run.begin_checkpoint(step)
    accelerator.wait_for_everyone()
    staging = run.staging(step)
    save_tree(staging, f"process_{accelerator.process_index}",
              {"random": random_states(), "step_generator": generator.get_state()})
    if accelerator.is_main_process:
        save_file(accelerator.unwrap_model(model).state_dict(), str(staging / "model.safetensors"))
        save_tree(staging, "optimizer", optimizer.state_dict())
        save_tree(staging, "training", {"step": step, "lr_schedule": lr_schedule.state_dict(), "ema": ema.state_dict()})
        export_pipeline(exported, ema, scheduler, staging / "model", card, autoencoder)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        run.publish_checkpoint(step, keep)
    accelerator.wait_for_everyone()


def read_checkpoint(folder: Path, process_index: int) -> dict[str, Any]:
    """Everything a resume needs from one checkpoint, read fully before any of it is applied."""
    try:
        model = load_file(folder / "model.safetensors")
    except (OSError, SafetensorError) as error:
        raise StateError(f"{str(folder)!r}: model weights are unreadable ({error})") from None
    state = {"model": model, "optimizer": load_tree(folder, "optimizer"), "training": load_tree(folder, "training")}
    # a run resumed on more processes than it was saved with: the new ones keep their fresh seeds
    process = f"process_{process_index}"
    state["process"] = load_tree(folder, process) if (folder / f"{process}.json").is_file() else None
    return state


MAX_WARMUP_FRACTION = 0.1


def build_lr_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup, then cosine decay to 0 at ``max_steps`` (or, with ``lr_schedule: constant``, ``lr`` held).

    Warmup is capped at 10% of ``max_steps``: a short run (max_steps=50 with the default warmup of 100) still
    reaches its learning rate and spends most of its steps near it.
    """
    warmup = min(config.warmup_steps, int(MAX_WARMUP_FRACTION * config.max_steps))
    if config.lr_schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    return get_cosine_schedule_with_warmup(optimizer, warmup, config.max_steps)


def train(config: TrainConfig, resume: bool = False, dataset: Any = None) -> Path:
    """Train (or resume) as ``config`` says; returns the exported pipeline folder ``output_dir/model``.

    One training per output folder: the first process (RANK 0 under torchrun / accelerate launch) holds its lock.
    """
    try:
        if int(os.environ.get("RANK", "0")) == 0:
            with folder_lock(config.output_dir, "training"):
                return _train(config, resume, dataset)
        return _train(config, resume, dataset)
    except KeyboardInterrupt:
        raise training_run(config).interrupted() from None


def training_run(config: TrainConfig) -> Run:
    return Run(config.output_dir, "run", "set output_dir=...", outputs=("model",))


def _train(config: TrainConfig, resume: bool, dataset: Any) -> Path:
    output_dir, final = Path(config.output_dir), Path(config.output_dir) / "model"
    run = training_run(config)
    check_launch()
    run.start(to_dict(config), resume, MAY_CHANGE_ON_RESUME)
    accelerator = Accelerator(
        cpu=not torch.accelerator.is_available(),  # Accelerate needs it to see torchrun's CPU processes as MULTI_CPU
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
        log_with=tracker(config.log_with),
        project_dir=str(output_dir),
    )
    if accelerator.device.type == "cuda":
        allow_tf32()
    set_seed(config.seed)  # identical initial weights on every process
    model, scheduler, teacher, taps, autoencoder = build_models(config)
    evaluation_config = dataclasses.replace(config.eval, reference=eval_reference(config))
    monitor = (TrainingMonitor(evaluation_config, config.data.sample_size, output_dir, teacher_features(config.teacher),
                               autoencoder) if config.eval_every else None)
    for frozen in (teacher, autoencoder):
        if frozen is not None:
            frozen.to(accelerator.device)
    data = build_dataset(config.data, config.seed, dataset)
    if len(data) < config.batch_size * accelerator.num_processes:
        raise TrainingError(f"{len(data)} images cannot fill one batch of {config.batch_size} per process: "
                            "lower batch_size or add images")
    if accelerator.is_main_process:
        print(f"{config.mode}: {accelerator.num_processes} process{'es' if accelerator.num_processes > 1 else ''} on "
              f"{accelerator.device.type}, mixed precision {config.mixed_precision}; data: {data.describe()}",
              file=sys.stderr)
        bfloat16 = config.mixed_precision == "bf16" or config.teacher_dtype == "bfloat16"
        if bfloat16 and (warning := emulated_bfloat16_warning(accelerator.device)):
            print(warning, file=sys.stderr)
    workers = loader_workers(config.data, data, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    loader = DataLoader(data, config.batch_size, shuffle=True, drop_last=True, num_workers=workers)
    optimizer = torch.optim.AdamW(model.parameters(), config.lr, config.adam_betas, weight_decay=config.weight_decay,
                                  fused=fused_adam(accelerator.device))
    lr_schedule = build_lr_schedule(optimizer, config)
    exported = model.student if isinstance(model, Distiller) else model
    size = sum(p.numel() for p in exported.parameters())
    if config.compile:
        compiled(model, accelerator.device)
    ema = EMAModel(exported.parameters(), decay=config.ema_decay, use_ema_warmup=config.ema_warmup, foreach=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema.to(accelerator.device)
    # this process's noise, timesteps and flips, drawn on the model's device (its own stream per process)
    generator = torch.Generator(accelerator.device).manual_seed(config.seed + 7919 * accelerator.process_index)
    latest, state = run.resume_point(lambda f: read_checkpoint(f, accelerator.process_index)) if resume else (None, None)
    step = 0
    if state is not None:
        step = restore(state, latest, accelerator.unwrap_model(model), optimizer, lr_schedule, ema, generator,
                       output_dir)
    if accelerator.is_main_process:
        run.open_log(step)
        run.write_config(to_dict(config))
        accelerator.init_trackers("wgunet", config=hyperparameters(config))
    bar = tqdm(total=config.max_steps, initial=step, desc=config.mode, disable=not accelerator.is_main_process)

    def card(scores: TrainingEvaluation | None) -> str:  # the export's model card at this step
        return model_card(config, step, size, scores, autoencoder.component if autoencoder else None)

    # Accelerate closes an epoch's last, partial accumulation group early: an epoch is ceil(batches / accumulation)
    # optimizer steps, and the data order is back where it stood at the checkpoint after skipping this many batches
    accumulation = config.gradient_accumulation_steps
    epoch, done = divmod(step, -(-len(loader) // accumulation))
    skip = done * accumulation
    # Nothing in a step waits for the device: the loss terms stay there and are read at log and checkpoint steps;
    # a non-finite loss is noted on the device (the first such step) and stops the run when it is next read.
    terms_sum, micro_batches, evaluation = 0, 0, None
    first_bad = torch.zeros((), dtype=torch.long, device=accelerator.device)  # 0: every loss so far was finite
    bad_values = None  # the loss terms at step first_bad

    def stop_if_non_finite() -> None:
        if first_bad.item():
            raise run.non_finite(int(first_bad), _format(terms, bad_values), "lower lr or use mixed_precision=no")

    started = time.perf_counter()
    while step < config.max_steps:
        loader.set_epoch(epoch)
        for x0 in accelerator.skip_first_batches(loader, skip) if skip else loader:
            with accelerator.accumulate(model):
                if config.compile:
                    torch.compiler.cudagraph_mark_step_begin()  # a new step: CUDA graphs may reuse its buffers
                terms = loss_terms(model, scheduler, teacher, taps, x0, generator, config, autoencoder)
                values = accelerator.reduce(torch.stack(list(terms.values())).detach().float(), "mean")
                newly_bad = (first_bad == 0) & ~torch.isfinite(values).all()
                first_bad = torch.where(newly_bad, step + 1, first_bad)
                bad_values = values if bad_values is None else torch.where(newly_bad, values, bad_values)
                accelerator.backward(terms["loss"])
                if accelerator.sync_gradients and config.grad_clip > 0:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            terms_sum, micro_batches = terms_sum + values, micro_batches + 1
            if not accelerator.sync_gradients:
                continue
            step += 1
            values, terms_sum, micro_batches = terms_sum / micro_batches, 0, 0  # the mean over the group's batches
            lr_schedule.step()
            ema.step(exported.parameters())
            bar.update()
            last = step == config.max_steps
            if step % config.log_every == 0 or last:
                stop_if_non_finite()
                metrics = {"step": step, **dict(zip(terms, values.tolist())), "lr": lr_schedule.get_last_lr()[0],
                           "seconds": round(time.perf_counter() - started, 3)}  # since this process's loop began
                bar.set_postfix_str(_format(terms, [metrics[k] for k in terms]))
                if accelerator.is_main_process:
                    run.log(metrics)
                    accelerator.log(metrics, step=step)
            if step % config.checkpoint_every == 0 or last:
                stop_if_non_finite()
                save_checkpoint(accelerator, run, step, model, optimizer, lr_schedule, ema, generator, exported,
                                scheduler, config.keep_checkpoints, card(evaluation), autoencoder)
            if monitor and (step % config.eval_every == 0 or last):
                stop_if_non_finite()
                bar.set_postfix_str(f"evaluating step {step}")
                evaluation = evaluate(accelerator, monitor, run, exported, ema, scheduler, step, card)
            if step >= config.max_steps:
                break
        epoch, skip = epoch + 1, 0
    bar.close()
    if accelerator.is_main_process:
        run.close_log()
        with atomic_folder(final) as temporary:
            shutil.copytree(list_checkpoints(output_dir)[-1] / "model", temporary, dirs_exist_ok=True)
            if autoencoder is not None:
                complete_export(temporary, autoencoder)
    accelerator.wait_for_everyone()
    # The DDP wrapper goes before end_training destroys the process group: freed after it, its reducer would drop
    # the group's last reference while holding the GIL, and Gloo's destructor then waits on a worker thread that
    # needs the GIL: a multi-process CPU run could hang at its end (pytorch/pytorch#56297).
    model = optimizer = loader = None
    accelerator.free_memory()
    accelerator.end_training()
    if config.push_to_hub and accelerator.is_main_process:  # after the export is safe on disk
        print(f"pushed: {push_export(final, config.hub_model_id)}")
    return final


def fused_adam(device: torch.device) -> bool:
    """AdamW's fused kernel where the device has one: one launch per step instead of several per parameter, and no
    host read of its step count (the for-loop and foreach versions read it with .item() every step)."""
    return device.type in ("cuda", "cpu", "mps", "xpu")


def restore(state: dict[str, Any], folder: Path, model: nn.Module, optimizer, lr_schedule, ema: EMAModel,
            generator: torch.Generator, output_dir: Path) -> int:
    """Put a checkpoint's state (read on the CPU) into the run, every tensor on the model's device; the step."""
    device = next(model.parameters()).device
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])  # torch casts its state to each parameter's device
        lr_schedule.load_state_dict(state["training"]["lr_schedule"])
        ema.load_state_dict(state["training"]["ema"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise TrainingError(f"checkpoint {str(folder)!r} does not fit this config ({str(error).splitlines()[0]}): "
                            f"resume with the config it was trained with ({output_dir / 'config.yaml'})") from None
    ema.to(device)  # load_state_dict put the shadow weights back on the CPU
    if state["process"] is not None:
        set_random_states(state["process"]["random"])
        try:
            generator.set_state(state["process"]["step_generator"])
        except RuntimeError:  # a CPU generator's state on a GPU, or the reverse
            print(f"warning: {str(folder)!r} was saved on another kind of device; the step noise restarts from the "
                  "seed, so the resumed run will not repeat the uninterrupted one", file=sys.stderr)
    return state["training"]["step"]


def _format(names, values) -> str:
    return ", ".join(f"{name} {float(value):.4g}" for name, value in zip(names, values))


TRACKER_PACKAGES = {"tensorboard": "tensorboard", "comet_ml": "comet_ml", "clearml": "clearml"}


def tracker(log_with: str) -> str | None:
    """The Accelerate tracker ``log_with`` names ("auto": TensorBoard when installed); its package must be there."""
    if log_with == "none" or (log_with == "auto" and importlib.util.find_spec("tensorboard") is None):
        return None
    name = "tensorboard" if log_with == "auto" else log_with
    if importlib.util.find_spec(TRACKER_PACKAGES.get(name, name)) is None:
        raise TrainingError(f"log_with={name} needs its package: pip install {name} (or pip install 'wgunet[track]' "
                            "for TensorBoard), or set log_with=none")
    return name


def hyperparameters(config: TrainConfig) -> dict[str, int | float | str | bool]:
    """The config as flat scalars (``loss.lambda_freq``, ...), which every tracker can store."""
    flat = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                add(f"{prefix}.{key}" if prefix else key, item)
        else:
            flat[prefix] = value if isinstance(value, (int, float, str, bool)) else str(value)

    add("", to_dict(config))
    return flat
