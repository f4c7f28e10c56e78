"""STIG: spectrum translation for refinement of image generation (seed 001; Lee, Jung, Seo, AAAI 2024).

A generated image's magnitude spectrum is translated toward the domain of real spectra, then the image is
rebuilt from the refined magnitude and its own phase:

    x -> F = DFT(x) per channel, centred -> log(|F| + floor) -> translator -> exp(.) - floor = |F'|
      -> x' = IDFT(|F'| e^{i angle F}), clipped to [0, 1]

Losses (CUT, Park et al. 2020, as STIG uses them, plus STIG's own terms; scaled down for 32x32 CPU runs):
    L = l_gan * LSGAN(PatchGAN on spectra) + l_profile * LSGAN(profile discriminator)   [STIG's spectral profile]
        + l_nce * PatchNCE(input, output) + l_nce * PatchNCE(real, translator(real))    [CUT's identity NCE]
        + l_idt * L1(translator(real), real)           [identity on real spectra]
        + l_ssim_real * (1 - SSIM(x'_real, x_real)) + l_ssim_gen * (1 - SSIM(x'_gen, x_gen))   [STIG, image domain]
        + l_low * L1 over the low frequencies          [keep what the generator got right]
    and the DC term (each channel's mean) passes through unchanged.

What differs from the paper: the translator is a small CUT ResNet, not its UNet++ (24.8 M parameters); it works
on log(|F| + floor), not on log(1 + |F|) min-max scaled per batch; the discriminators are LSGAN without STIG's
sigmoid; PatchNCE compares three encoder levels with detached keys as the paper and CUT describe (the official
code's loss sees only level 0, and applies lambda_NCE twice); the schedule is CUT's, for 1000 steps, not the
paper's batch 1 over 10 epochs. Each of STIG's additions has a weight (0 switches it off) for ablation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure as ssim
from tqdm.auto import tqdm

from wgunet.common.errors import UserError
from wgunet.common.files import atomic_folder, folder_lock, read_json, write_json
from wgunet.common.pixels import to_unit, unit_to_uint8
from wgunet.evaluation.image_sets import ImageSet, ImageSource, as_source
from wgunet.evaluation.spectral import default_bins, normalized_radius, ring_mean
from wgunet.training.runs import Run
from wgunet.training.state import StateError, load_tree, save_tree

LOG_SCALE = 8.0  # log |F| / LOG_SCALE is within about [-1, 1] for images in [0, 1]
# OPEN (which log): log(|F| + floor), not log(1 + |F|): an additive correction is then a gain on |F| at every
# frequency, where log(1 + |F|) is nearly linear for the small high-frequency magnitudes; it restored low-passed
# patches better (docs/results.md, STIG refinement). The floor lies
# well below uint8 quantisation noise (|F| ~ 0.036 at 32x32), so only exact zeros sit on it.
MAGNITUDE_FLOOR = 1e-3
SPECTRUM = f"log(|F| + {MAGNITUDE_FLOOR}) / {LOG_SCALE}"  # saved with each refiner, checked when one is loaded


class StigError(UserError):
    """A STIG run or model that cannot be used; the message names the problem and the fix."""


@dataclass
class StigConfig:
    # "compact": the CPU default below. "paper": STIG's UNet++ translator (~24.8 M parameters) and its sigmoid
    # PatchGAN (~1.56 M); build it with paper_config(), which also sets the paper's weights and schedule.
    architecture: str = "compact"
    channels: int = 16  # translator width (CUT: 64)
    blocks: int = 2  # ResNet blocks (CUT: 9)
    discriminator_channels: int = 16  # PatchGAN width (CUT: 64)
    nce_layers: tuple[int, ...] = (0, 1, 3)  # translator encoder layers whose patches PatchNCE compares
    nce_patches: int = 64  # sampled patch locations per layer (CUT: 256)
    nce_temperature: float = 0.07
    # OPEN (weights): CUT's lambda_GAN = 1 left the restoration of blurred patches seed-dependent at 1000 steps;
    # 5 restores them over every seed tried (docs/results.md, STIG refinement)
    lambda_gan: float = 5.0
    lambda_nce: float = 1.0
    lambda_identity: float = 1.0
    lambda_low: float = 10.0
    # STIG's own terms (paper weights 3, 3 and 1): a discriminator on the spectral profile, the azimuthal mean of
    # the spectrum ("spectral filter profile"), and SSIM identities of the rebuilt images; 0 switches one off
    lambda_profile: float = 3.0
    lambda_ssim_real: float = 3.0
    lambda_ssim_generated: float = 1.0
    nce_detach_keys: bool = True  # CUT and STIG detach PatchNCE's keys; False keeps their gradient
    low_radius: float = 0.15  # normalised radius (1 = corner) below which the spectrum is kept
    lr: float = 1e-3  # CUT: 2e-4; 5x for runs of a few hundred steps, decayed to zero after lr_constant_fraction
    lr_constant_fraction: float = 0.5  # CUT: the first half at full lr; STIG: the first 20%
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 16
    steps: int = 1000
    checkpoint_every: int = 200
    seed: int = 0


def paper_config(**overrides) -> StigConfig:
    """STIG as published (arXiv 2403.05093 and its code): UNet++ translator, sigmoid PatchGAN + profile
    discriminator, GAN / profile / SSIM-real / low-frequency weights 3, SSIM-generated 1, PatchNCE weight 10 (the
    official code applies its lambda twice; the paper's one is meant), batch 1, lr 8e-5 constant for 20% of the
    steps then linearly to 0. OPEN: PatchNCE compares all five encoder levels (the official loss sees only the
    first); CUT's L1 identity on real spectra is kept at weight 1."""
    values = dict(architecture="paper", nce_layers=(0, 1, 2, 3, 4), nce_patches=256, lambda_gan=3.0, lambda_nce=10.0,
                  lambda_low=3.0, lambda_profile=3.0, lambda_ssim_real=3.0, lambda_ssim_generated=1.0, lr=8e-5,
                  lr_constant_fraction=0.2, batch_size=1)
    return StigConfig(**(values | overrides))


# ---- the spectrum round trip -------------------------------------------------------------------------------
def to_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled log-magnitude, phase) of [0, 1] images (B, C, H, W), DC centred."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.double()), dim=(-2, -1))
    return (torch.log(spectrum.abs() + MAGNITUDE_FLOOR) / LOG_SCALE).float(), spectrum.angle()


def from_spectrum(log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """The image whose centred spectrum has this magnitude and phase, clipped to [0, 1]."""
    magnitude = (torch.exp(log_magnitude.double() * LOG_SCALE) - MAGNITUDE_FLOOR).clamp_min(0)
    spectrum = torch.polar(magnitude, phase.double())
    images = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real
    return images.clamp(0, 1).float()


def low_frequency_mask(size: int, radius: float) -> torch.Tensor:
    return (normalized_radius(size, size) < radius).float()


def with_radius(spectra: torch.Tensor) -> torch.Tensor:
    """Append each frequency's normalised radius as a channel.

    OPEN (position): convolutions barely know where they are, but the gain a spectrum needs depends on
    the radius (a small model loses the high frequencies), so both networks see it (CoordConv).
    """
    b, _, h, w = spectra.shape
    radius = normalized_radius(h, w, spectra.device)
    return torch.cat([spectra, radius.to(spectra.dtype).expand(b, 1, h, w)], dim=1)


# ---- networks ----------------------------------------------------------------------------------------------
class ResnetBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
                                  nn.ReLU(True), nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                                  nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Translator(nn.Module):
    """CUT's ResNet generator, one downsampling level, predicting a correction to its input spectrum.

    OPEN (residual output): the output is input + correction with the last conv zero-initialised, so an
    untrained refiner is the identity and training starts from the generator's own spectrum.
    """

    def __init__(self, in_channels: int = 3, channels: int = 32, blocks: int = 3):
        super().__init__()
        self.encoder = nn.ModuleList([
            nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_channels + 1, channels, 7), nn.InstanceNorm2d(channels),
                          nn.ReLU(True)),
            nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * channels),
                          nn.ReLU(True)),
            *[ResnetBlock(2 * channels) for _ in range(blocks)],
        ])
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * channels, channels, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(channels), nn.ReLU(True), nn.ReflectionPad2d(3), nn.Conv2d(channels, in_channels, 7))
        nn.init.zeros_(self.decoder[-1].weight)
        nn.init.zeros_(self.decoder[-1].bias)

    def forward(self, x: torch.Tensor, layers: tuple[int, ...] = ()) -> torch.Tensor | list[torch.Tensor]:
        """The refined spectrum, or with ``layers`` the encoder features there (for PatchNCE)."""
        h, features = with_radius(x), []
        for index, layer in enumerate(self.encoder):
            h = layer(h)
            if index in layers:
                features.append(h)
        if layers:
            return features
        # OPEN (DC): passed through exactly. Held only by the low-frequency L1 penalty, it drifted: with
        # lambda_gan 5 the default student's refined images lost most of their mean brightness, which the
        # spectral scores (computed without DC) do not show. Passing all of r < low_radius through instead
        # made the restoration seed-dependent again (docs/results.md, STIG refinement).
        is_dc = normalized_radius(x.shape[-2], x.shape[-1], x.device) == 0
        return x + self.decoder(h).masked_fill(is_dc, 0.0)


class VGGBlock(nn.Sequential):
    """UNet++'s node: (3x3 conv, batch norm, ReLU) twice."""

    def __init__(self, in_channels: int, middle: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, middle, 3, padding=1), nn.BatchNorm2d(middle), nn.ReLU(True),
                         nn.Conv2d(middle, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(True))


class NestedUNet(nn.Module):
    """STIG's translator: UNet++ (Zhou et al. 2018) with widths 64-128-256-512-512, max-pool down, bicubic up,
    every decoder node fed by all same-level nodes before it; output 2 sigmoid(.) - 1, the spectrum itself (no
    residual, DC not passed through, as published)."""

    def __init__(self, in_channels: int = 3, width: int = 64):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.encoder = nn.ModuleList([VGGBlock(in_channels, w[0], w[0])]
                                     + [VGGBlock(w[i - 1], w[i], w[i]) for i in range(1, 5)])
        # node (i, j): level i, j-th on that level; input: the j earlier nodes of level i and the upsampled (i+1, j-1)
        self.nodes = nn.ModuleDict({f"{i}_{j}": VGGBlock(w[i] * j + w[i + 1], w[i], w[i])
                                    for j in range(1, 5) for i in range(0, 5 - j)})
        self.final = nn.Conv2d(w[0], in_channels, 1)

    def forward(self, x: torch.Tensor, layers: tuple[int, ...] = ()) -> torch.Tensor | list[torch.Tensor]:
        """The refined spectrum, or with ``layers`` the encoder levels named there (for PatchNCE)."""
        grid = {}
        for i, block in enumerate(self.encoder):
            grid[i, 0] = block(x if i == 0 else F.max_pool2d(grid[i - 1, 0], 2))
        if layers:
            return [grid[i, 0] for i in layers]
        for j in range(1, 5):
            for i in range(0, 5 - j):
                up = F.interpolate(grid[i + 1, j - 1], scale_factor=2, mode="bicubic", align_corners=False)
                grid[i, j] = self.nodes[f"{i}_{j}"](torch.cat([grid[i, k] for k in range(j)] + [up], 1))
        return 2 * torch.sigmoid(self.final(grid[0, 4])) - 1


class PaperPatchDiscriminator(nn.Sequential):
    """STIG's PatchGAN: four stride-2 3x3 convs (64-128-256-512, instance norm after the first, LeakyReLU 0.2),
    a 3x3 conv to one channel, sigmoid."""

    def __init__(self, in_channels: int = 3):
        widths = [in_channels, 64, 128, 256, 512]
        layers = []
        for i in range(4):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1)]
            layers += [nn.InstanceNorm2d(widths[i + 1])] if i else []
            layers += [nn.LeakyReLU(0.2)]
        super().__init__(*layers, nn.Conv2d(512, 1, 3, padding=1), nn.Sigmoid())


def build_translator(config: StigConfig, in_channels: int) -> nn.Module:
    if config.architecture == "paper":
        return NestedUNet(in_channels)
    if config.architecture == "compact":
        return Translator(in_channels, config.channels, config.blocks)
    raise StigError(f"unknown STIG architecture {config.architecture!r}: compact or paper")


class PatchDiscriminator(nn.Module):
    """A small PatchGAN on spectra: one real/fake logit per overlapping patch.

    OPEN (what the discriminator sees): the log-magnitude spectrum only, which is what STIG translates
    (plus the radius channel, like the translator).
    """

    def __init__(self, in_channels: int = 3, channels: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels + 1, channels, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.InstanceNorm2d(2 * channels), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * channels, 4 * channels, 3, 1, 1), nn.InstanceNorm2d(4 * channels), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * channels, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(with_radius(x))


class ProfileDiscriminator(nn.Module):
    """STIG's spectral-profile discriminator: a linear real/fake score of the reduced (ring-averaged) spectrum of
    each channel. OPEN: LSGAN like the PatchGAN here, where STIG puts a sigmoid before its MSE."""

    def __init__(self, in_channels: int, size: int, sigmoid: bool = False):
        super().__init__()
        self.linear = nn.Linear(in_channels * default_bins(size, size), 1)
        self.sigmoid = sigmoid  # the paper preset's, as published

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.linear(ring_mean(x)[1].flatten(1))
        return torch.sigmoid(score) if self.sigmoid else score


class PatchNCE(nn.Module):
    """CUT's patch-wise contrastive loss: a patch of the output must match the input patch at the same place.

    Per layer, an MLP head projects features; each sampled location's output patch is the query, the input
    patch at that location is the positive, the input patches at the other sampled locations the negatives.
    """

    def __init__(self, widths: list[int], dim: int = 64, temperature: float = 0.07, detach_keys: bool = True):
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(w, dim), nn.ReLU(True), nn.Linear(dim, dim)) for w in widths)
        self.temperature, self.detach_keys = temperature, detach_keys

    def forward(self, source: list[torch.Tensor], target: list[torch.Tensor], patches: int,
                generator: torch.Generator) -> torch.Tensor:
        losses = []
        for head, s, t in zip(self.heads, source, target):
            b, c, h, w = s.shape
            where = torch.randperm(h * w, generator=generator)[:patches].to(s.device)
            keys = F.normalize(head(s.flatten(2)[:, :, where].transpose(1, 2)), dim=-1)  # (B, P, D)
            keys = keys.detach() if self.detach_keys else keys  # CUT: only the output side (queries) learns
            queries = F.normalize(head(t.flatten(2)[:, :, where].transpose(1, 2)), dim=-1)
            logits = queries @ keys.transpose(1, 2) / self.temperature  # (B, P, P): diagonal = positives
            labels = torch.arange(len(where), device=s.device).expand(b, -1)
            losses.append(F.cross_entropy(logits.flatten(0, 1), labels.flatten()))
        return torch.stack(losses).mean()


class Refiner(nn.Module):
    """Everything STIG trains; only ``translator`` is needed to refine images."""

    def __init__(self, config: StigConfig, in_channels: int = 3, size: int = 32):
        super().__init__()
        paper = config.architecture == "paper"
        self.translator = build_translator(config, in_channels)
        self.discriminator = (PaperPatchDiscriminator(in_channels) if paper
                              else PatchDiscriminator(in_channels, config.discriminator_channels))
        self.profile_discriminator = ProfileDiscriminator(in_channels, size, sigmoid=paper)
        with torch.no_grad():
            probe = torch.zeros(2, in_channels, 16, 16)  # two images: batch norm needs more than one value
            widths = [f.shape[1] for f in self.translator(probe, config.nce_layers)]
        self.nce = PatchNCE(widths, temperature=config.nce_temperature, detach_keys=config.nce_detach_keys)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters()) + list(self.profile_discriminator.parameters())


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


# ---- training ----------------------------------------------------------------------------------------------
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


def save_refiner(translator: nn.Module, config: StigConfig, folder: Path, in_channels: int) -> Path:
    with atomic_folder(folder) as temporary:
        save_file(translator.state_dict(), temporary / "translator.safetensors")
        write_json(temporary / "config.json",
                   asdict(config) | {"in_channels": in_channels, "spectrum": SPECTRUM})
    return folder


def load_refiner(folder: str | Path) -> nn.Module:
    folder = Path(folder)
    if (folder / "refiner").is_dir():
        folder = folder / "refiner"  # a training output folder
    if not (folder / "config.json").is_file() or not (folder / "translator.safetensors").is_file():
        raise StigError(f"{str(folder)!r} is not a STIG refiner (config.json + translator.safetensors): "
                        "train one with `eval.py stig train`")
    try:
        values = read_json(folder / "config.json")
        if values.pop("spectrum", None) != SPECTRUM:
            raise StigError(f"{str(folder)!r} was trained on another spectrum representation than this version's "
                            f"({SPECTRUM}): train it again with `eval.py stig train`")
        in_channels = values.pop("in_channels")
        config = StigConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        translator = build_translator(config, in_channels)
        translator.load_state_dict(load_file(folder / "translator.safetensors"))
    except (json.JSONDecodeError, TypeError, KeyError, RuntimeError, OSError) as error:
        raise StigError(f"could not load the STIG refiner in {str(folder)!r}: {error}") from None
    return translator.eval()


@torch.no_grad()
def refine(translator: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Refined uint8 images (N, C, H, W): translated magnitude, original phase."""
    refined = []
    for start in tqdm(range(0, len(images), batch_size), desc="refine", leave=False, disable=len(images) <= batch_size):
        log_magnitude, phase = to_spectrum(to_unit(images[start : start + batch_size]))
        refined.append(unit_to_uint8(from_spectrum(translator(log_magnitude), phase)))
    return torch.cat(refined)
