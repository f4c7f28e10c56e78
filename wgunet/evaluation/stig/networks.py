"""STIG's networks: translators (a small CUT ResNet, the paper's UNet++), PatchGAN and profile discriminators,
PatchNCE, and the Refiner that holds them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wgunet.evaluation.spectral import default_bins, normalized_radius, ring_mean
from wgunet.evaluation.stig.config import StigConfig, StigError
from wgunet.evaluation.stig.spectrum import with_radius


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


