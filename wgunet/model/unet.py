"""WG-UNet: a small diffusion UNet whose down- and up-sampling are wavelet-gated (Yang et al., "Diffusion Probabilistic Model Made Slim", CVPR 2023).

The layout follows diffusers' ``UNet2DModel`` (ResNet blocks with a time embedding, optional
self-attention, skip connections after every block) so that the student is read like the
teachers it is distilled from, and runs unchanged inside ``DDPMPipeline`` / ``DDIMPipeline``.

    conv_in -> [ResNet(+Attn)] x layers_per_block -> WG-Down  ... per level, no WG-Down on the last
            -> mid: ResNet, Attn, ResNet
            -> [ResNet(+Attn)] x (layers_per_block + 1) over the skips -> WG-Up  ... per level
            -> GroupNorm, SiLU, conv_out
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import ResnetBlock2D
from diffusers.utils import BaseOutput
from torch import nn

from wgunet.model.blocks import WGDown, WGUp
from wgunet.model.wavelets import check_wavelet, filter_bank, register_filter_bank


@dataclass
class WGUNetOutput(BaseOutput):
    """``sample`` is the prediction; ``features`` maps "down.i" / "mid" / "up.i" to that stage's output."""

    sample: torch.Tensor
    features: dict[str, torch.Tensor] | None = None


class _Level(nn.Module):
    """The ResNet (+ attention) blocks of one resolution, then an optional resampler."""

    def __init__(self, resnets: list[nn.Module], attentions: list[nn.Module], resample: nn.Module | None):
        super().__init__()
        self.resnets = nn.ModuleList(resnets)
        self.attentions = nn.ModuleList(attentions)
        self.resample = resample


class WGUNet(ModelMixin, ConfigMixin):
    """Wavelet-Gated UNet. Every size comes from the config; see ``configs/default.yaml``."""

    _supports_gradient_checkpointing = True  # diffusers' enable_gradient_checkpointing() switches it on

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,
        in_channels: int = 3,
        out_channels: int = 3,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        attention_resolutions: tuple[int, ...] = (8,),
        attention_head_dim: int = 32,
        norm_num_groups: int = 8,
        norm_eps: float = 1e-5,
        dropout: float = 0.0,
        wavelet: str = "haar",
        gate_hidden: int = 16,
        gate_on_time: bool = True,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        wavelet_filters: list[list[float]] | None = None,
        auto_map: dict[str, str] | None = None,  # set by exports (wgunet.model.portable): where diffusers' AutoModel finds this code
    ):
        super().__init__()
        widths = list(block_out_channels)
        resolutions = [sample_size // 2**i for i in range(len(widths))]
        self._check_config(sample_size, widths, resolutions, attention_resolutions, attention_head_dim, norm_num_groups)
        if wavelet_filters is not None:  # a saved model's own filter bank: no PyWavelets needed to run it
            register_filter_bank(wavelet, wavelet_filters)
        check_wavelet(wavelet)
        if wavelet not in ("haar", "db1") and wavelet_filters is None:  # saved with the model (wavelet_filters)
            self.register_to_config(wavelet_filters=[list(f) for f in filter_bank(wavelet)])

        temb_dim = 4 * widths[0]
        gate_temb = temb_dim if gate_on_time else None
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(widths[0], temb_dim)

        def resnet(cin: int, cout: int) -> ResnetBlock2D:
            return ResnetBlock2D(
                in_channels=cin, out_channels=cout, temb_channels=temb_dim, groups=norm_num_groups, eps=norm_eps, dropout=dropout
            )

        def attention(width: int, resolution: int | None = None) -> nn.Module:
            """Self-attention at the configured resolutions (always in the mid block, resolution None)."""
            if resolution is not None and resolution not in attention_resolutions:
                return nn.Identity()
            return Attention(
                width,
                heads=width // attention_head_dim,
                dim_head=attention_head_dim,
                eps=norm_eps,
                norm_num_groups=norm_num_groups,
                residual_connection=True,
                bias=True,
                upcast_softmax=True,
                _from_deprecated_attn_block=True,
            )

        self.conv_in = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1)

        # Down path: skip widths are recorded in the order the up path will pop them.
        self.down_levels = nn.ModuleList()
        skip_widths, width = [widths[0]], widths[0]
        for i, (out_width, resolution) in enumerate(zip(widths, resolutions)):
            resnets, attentions = [], []
            for _ in range(layers_per_block):
                resnets.append(resnet(width, out_width))
                attentions.append(attention(out_width, resolution))
                width = out_width
                skip_widths.append(width)
            last = i == len(widths) - 1
            down = None if last else WGDown(width, gate_temb, gate_hidden, wavelet)
            if down is not None:
                skip_widths.append(width)
            self.down_levels.append(_Level(resnets, attentions, down))

        self.mid = _Level([resnet(width, width), resnet(width, width)], [attention(width)], None)

        # Up path: layers_per_block + 1 blocks per level, each consuming one skip.
        self.up_levels = nn.ModuleList()
        for i, (out_width, resolution) in enumerate(zip(reversed(widths), reversed(resolutions))):
            resnets, attentions = [], []
            for _ in range(layers_per_block + 1):
                resnets.append(resnet(width + skip_widths.pop(), out_width))
                attentions.append(attention(out_width, resolution))
                width = out_width
            last = i == len(widths) - 1
            up = None if last else WGUp(width, width, gate_temb, gate_hidden, wavelet)
            self.up_levels.append(_Level(resnets, attentions, up))

        self.norm_out = nn.GroupNorm(norm_num_groups, widths[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(widths[0], out_channels, kernel_size=3, padding=1)
        self.gradient_checkpointing = False

    def _block(self, block: nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
        """``block(*args)``; with gradient checkpointing on, its activations are recomputed in the backward pass
        instead of kept (each ResNet, attention and WG block is one checkpoint)."""
        if self.gradient_checkpointing and torch.is_grad_enabled() and not isinstance(block, nn.Identity):
            return self._gradient_checkpointing_func(block, *args)
        return block(*args)

    @staticmethod
    def _check_config(sample_size, widths, resolutions, attention_resolutions, attention_head_dim, norm_num_groups) -> None:
        downsamplings = len(widths) - 1
        if sample_size % 2**downsamplings:
            raise ValueError(
                f"sample_size {sample_size} is not divisible by 2**{downsamplings} = {2**downsamplings}, which "
                f"{len(widths)} levels (block_out_channels) need: change sample_size or the number of levels"
            )
        bad = [w for w in widths if w % norm_num_groups]
        if bad:
            raise ValueError(f"block_out_channels {bad} are not divisible by norm_num_groups={norm_num_groups}: pick widths that are")
        unknown = [r for r in attention_resolutions if r not in resolutions]
        if unknown:
            raise ValueError(f"attention_resolutions {unknown} are not resolutions of this model; it has {resolutions}")
        bad = [w for w, r in zip(widths, resolutions) if r in attention_resolutions and w % attention_head_dim]
        if bad or widths[-1] % attention_head_dim:
            raise ValueError(
                f"attention widths {bad or [widths[-1]]} are not divisible by attention_head_dim={attention_head_dim}"
            )

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        return_dict: bool = True,
        return_features: bool = False,
    ) -> WGUNetOutput | tuple:
        """Predict the model target (epsilon, v or x0, per the scheduler) for ``sample`` at ``timestep``.

        With ``return_features`` the output also carries each stage's feature map, keyed "down.i",
        "mid", "up.i", for spectrum-aware distillation.
        """
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([timestep], dtype=torch.long, device=sample.device)
        elif timestep.dim() == 0:
            timestep = timestep[None].to(sample.device)
        timestep = timestep.expand(sample.shape[0])
        temb = self.time_embedding(self.time_proj(timestep).to(dtype=self.dtype))
        gate_temb = temb if self.config.gate_on_time else None

        features: dict[str, torch.Tensor] = {}
        h = self.conv_in(sample)
        skips = [h]
        for i, level in enumerate(self.down_levels):
            for resnet, attention in zip(level.resnets, level.attentions):
                h = self._block(attention, self._block(resnet, h, temb))
                skips.append(h)
            if level.resample is not None:
                h = self._block(level.resample, h, gate_temb)
                skips.append(h)
            features[f"down.{i}"] = h

        h = self._block(self.mid.resnets[0], h, temb)
        h = self._block(self.mid.resnets[1], self._block(self.mid.attentions[0], h), temb)
        features["mid"] = h

        for i, level in enumerate(self.up_levels):
            for resnet, attention in zip(level.resnets, level.attentions):
                h = self._block(attention, self._block(resnet, torch.cat([h, skips.pop()], dim=1), temb))
            if level.resample is not None:
                h = self._block(level.resample, h, gate_temb)
            features[f"up.{i}"] = h

        out = self.conv_out(nn.functional.silu(self.norm_out(h)))
        features = features if return_features else None
        if not return_dict:
            return (out,) if features is None else (out, features)
        return WGUNetOutput(sample=out, features=features)
