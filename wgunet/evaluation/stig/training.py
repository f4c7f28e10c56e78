"""STIG training: the losses (CUT's and STIG's terms) and the resumable loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torchmetrics.functional.image import structural_similarity_index_measure as ssim
from tqdm.auto import tqdm

from wgunet.common.files import folder_lock
from wgunet.common.pixels import to_unit
from wgunet.evaluation.image_sets import ImageSet, ImageSource, as_source
from wgunet.evaluation.stig.config import StigConfig, StigError
from wgunet.evaluation.stig.networks import Refiner
from wgunet.evaluation.stig.refiner import save_refiner
from wgunet.evaluation.stig.spectrum import from_spectrum, low_frequency_mask, to_spectrum
from wgunet.training.runs import Run
from wgunet.training.state import StateError, load_tree, save_tree


@dataclass
class Batch:
    """Spectra of a batch of images (to_spectrum) and the images themselves in [0, 1]."""

    spectrum: torch.Tensor
    phase: torch.Tensor
    images: torch.Tensor

    @staticmethod
    def of(images: torch.Tensor) -> Batch:
        unit = to_unit(images)
        return Batch(*to_spectrum(unit), unit)


def lsgan_real(score: torch.Tensor) -> torch.Tensor:
    return (score - 1).pow(2).mean()


def generator_losses(refiner: Refiner, config: StigConfig, fake: Batch, real: Batch, low: torch.Tensor,
                     generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The translator's loss terms (and ``loss``, their weighted sum), and the refined fake spectra."""
    translator, layers = refiner.translator, config.nce_layers
    refined, real_identity = translator(fake.spectrum), translator(real.spectrum)
    terms = {
        "gan": lsgan_real(refiner.discriminator(refined)),
        "nce": refiner.nce(translator(fake.spectrum, layers), translator(refined, layers), config.nce_patches, generator)
        + refiner.nce(translator(real.spectrum, layers), translator(real_identity, layers), config.nce_patches,
                      generator),
        "identity": (real_identity - real.spectrum).abs().mean(),
        "low": ((refined - fake.spectrum).abs() * low).sum() / (low.sum() * refined.shape[0] * refined.shape[1]),
    }
    weights = {"gan": config.lambda_gan, "nce": config.lambda_nce, "identity": config.lambda_identity,
               "low": config.lambda_low}
    if config.lambda_profile:
        terms["profile"], weights["profile"] = lsgan_real(refiner.profile_discriminator(refined)), config.lambda_profile
    if config.lambda_ssim_real:
        terms["ssim_real"] = 1 - ssim(from_spectrum(real_identity, real.phase), real.images, data_range=1.0)
        weights["ssim_real"] = config.lambda_ssim_real
    if config.lambda_ssim_generated:
        terms["ssim_generated"] = 1 - ssim(from_spectrum(refined, fake.phase), fake.images, data_range=1.0)
        weights["ssim_generated"] = config.lambda_ssim_generated
    terms["loss"] = sum(weights[k] * terms[k] for k in weights)
    return terms, refined


def discriminator_loss(refiner: Refiner, config: StigConfig, real: torch.Tensor, refined: torch.Tensor) -> torch.Tensor:
    """LSGAN: real spectra -> 1, refined ones -> 0, for the PatchGAN and (when used) the profile discriminator."""
    discriminators = [refiner.discriminator] + ([refiner.profile_discriminator] if config.lambda_profile else [])
    return sum(0.5 * (lsgan_real(d(real)) + d(refined).pow(2).mean()) for d in discriminators)


def train_refiner(generated: ImageSet | ImageSource | torch.Tensor, real: ImageSet | ImageSource | torch.Tensor,
                  out: str | Path, config: StigConfig, resume: bool = False) -> Path:
    """Train on uint8 (N, C, H, W) generated and real sets, each batch read from them by index (a set is never
    held whole); writes ``out/refiner`` and resumable checkpoints."""
    generated, real = as_source(generated), as_source(real)
    shapes = [tuple(s.read(0, 1).shape[1:]) for s in (generated, real)]
    if shapes[0] != shapes[1]:
        raise StigError(f"generated {shapes[0]} and real {shapes[1]} images differ in shape")
    run = Run(out, "STIG run", "use another --out", outputs=("refiner",))
    with folder_lock(out, "STIG training"):
        run.start(asdict(config), resume, may_change=("steps", "checkpoint_every", "lr"))
        return _train_refiner(generated, real, run, config)


def _train_refiner(generated: ImageSource, real: ImageSource, run: Run, config: StigConfig) -> Path:
    torch.manual_seed(config.seed)
    channels, size = generated.read(0, 1).shape[1], generated.size[-1]
    refiner = Refiner(config, channels, size)
    g_params = list(refiner.translator.parameters()) + list(refiner.nce.parameters())
    g_optimizer = torch.optim.Adam(g_params, config.lr, betas=config.betas)
    d_optimizer = torch.optim.Adam(refiner.discriminator_parameters(), config.lr, betas=config.betas)
    generator = torch.Generator().manual_seed(config.seed)
    latest, state = run.resume_point(_read_checkpoint)
    step = 0
    if state is not None:
        refiner.load_state_dict(state["refiner"])
        g_optimizer.load_state_dict(state["g"])
        d_optimizer.load_state_dict(state["d"])
        generator.set_state(state["generator"])
        step = int(state["step"])
    low = low_frequency_mask(size, config.low_radius)
    run.open_log(step)
    run.write_config(asdict(config))
    bar = tqdm(total=config.steps, initial=step, desc="stig")
    while step < config.steps:
        # constant, then linear decay to zero (CUT: after half the steps; STIG: after 20%), which settles the game
        decay = (1 - step / config.steps) / (1 - config.lr_constant_fraction)
        for group in g_optimizer.param_groups + d_optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, decay)
        fake = Batch.of(generated.take(torch.randint(0, len(generated), (config.batch_size,), generator=generator)))
        real_batch = Batch.of(real.take(torch.randint(0, len(real), (config.batch_size,), generator=generator)))
        terms, refined = generator_losses(refiner, config, fake, real_batch, low, generator)
        if not torch.isfinite(terms["loss"]):
            raise run.non_finite(step + 1, ", ".join(f"{k} {v.item():.4g}" for k, v in terms.items()), "lower --lr")
        g_optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        g_optimizer.step()
        d_loss = discriminator_loss(refiner, config, real_batch.spectrum, refined.detach())
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        step += 1
        values = {k: v.item() for k, v in terms.items()} | {"discriminator": d_loss.item()}
        bar.update()
        bar.set_postfix_str(", ".join(f"{k} {v:.3g}" for k, v in values.items()))
        run.log({"step": step, **values})
        if step % config.checkpoint_every == 0 or step == config.steps:
            state = {"g": g_optimizer.state_dict(), "d": d_optimizer.state_dict(), "generator": generator.get_state(),
                     "step": step}
            run.save_checkpoint(step, keep=2, write=partial(_write_checkpoint, refiner, state))
    bar.close()
    run.close_log()
    return save_refiner(refiner.translator, config, run.path / "refiner", channels)


def _write_checkpoint(refiner: Refiner, state: dict, folder: Path) -> None:
    save_file(refiner.state_dict(), folder / "refiner.safetensors")
    save_tree(folder, "state", state)


def _read_checkpoint(folder: Path) -> dict:
    """A STIG checkpoint's weights and state, read fully before any of it is applied (StateError if unreadable)."""
    try:
        weights = load_file(folder / "refiner.safetensors")
    except (OSError, SafetensorError) as error:
        raise StateError(f"{str(folder)!r}: refiner weights are unreadable ({error})") from None
    return {"refiner": weights, **load_tree(folder, "state")}

