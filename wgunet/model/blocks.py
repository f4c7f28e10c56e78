"""Wavelet-gated down- and up-sampling blocks (WG-Down, WG-Up) of the WG-UNet (Yang et al.,
"Diffusion Probabilistic Model Made Slim", CVPR 2023):

WG-Down:  X' = sum_{i in LL,LH,HL,HH} g_i * X_i,      g = sigmoid(FFN(avgpool(X)))
WG-Up:    X' = IDWT(g_LL * X_LL, g_LH * X_LH, g_HL * X_HL, g_HH * X_HH)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wgunet.model.wavelets import check_wavelet, gated_dwt2, gated_expand_idwt2

# Initial gate values per band (LL, LH, HL, HH). With orthonormal Haar, LL+LH+HL+HH = 2*x[0::2, 0::2],
# so equal gates would make a fresh WG-Down plain aliased subsampling. LL at 0.5 turns it into a 2x2
# average pool (a constant passes at its level); detail gates at 0.1 keep aliasing 25x weaker in energy
# than stride-2 subsampling while staying far enough from sigmoid's flat tail to learn quickly.
INITIAL_GATES = (0.5, 0.1, 0.1, 0.1)


class SubbandGate(nn.Module):
    """g = sigmoid(FFN(avgpool(X) [, t_emb])): one gate per channel per sub-band, shape (B, 4, C, 1, 1).

    OPEN (gate shape): "element-wise" in the paper is read as one gate per channel per band (4C gates),
    not one scalar per band. OPEN (FFN): in -> hidden -> 4C with SiLU; the time embedding, when given,
    enters the hidden layer additively, which equals concatenating it to avgpool(X).
    """

    def __init__(self, in_channels: int, gated_channels: int, temb_channels: int | None = None, hidden: int = 16):
        super().__init__()
        self.gated_channels = gated_channels
        self.pool_proj = nn.Linear(in_channels, hidden)
        self.temb_proj = nn.Linear(temb_channels, hidden) if temb_channels else None
        self.out = nn.Linear(hidden, 4 * gated_channels)
        nn.init.zeros_(self.out.weight)  # start exactly at INITIAL_GATES, whatever the input
        logits = torch.tensor([math.log(g / (1 - g)) for g in INITIAL_GATES])
        with torch.no_grad():
            self.out.bias.copy_(logits.repeat_interleave(gated_channels))

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.pool_proj(x.mean(dim=(2, 3)))
        if temb is not None:
            if self.temb_proj is None:
                raise ValueError("a time embedding was passed to a gate built without temb_channels")
            hidden = hidden + self.temb_proj(temb)
        gates = torch.sigmoid(self.out(F.silu(hidden)))
        return gates.view(x.shape[0], 4, self.gated_channels, 1, 1)


class WGDown(nn.Module):
    """Wavelet-gated downsampling: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int, temb_channels: int | None = None, gate_hidden: int = 16, wavelet: str = "haar"):
        super().__init__()
        check_wavelet(wavelet)  # fail at construction, not at the first forward
        self.wavelet = wavelet
        self.gate = SubbandGate(channels, channels, temb_channels, gate_hidden)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        # = wavelets.four_band_down(x, gates), with the gates folded into the analysis filters (tested equal)
        return gated_dwt2(x, self.gate(x, temb), self.wavelet)


class WGUp(nn.Module):
    """Wavelet-gated upsampling: (B, C, H, W) -> (B, C_out, 2H, 2W).

    A 1x1 conv expands C to 4*C_out; the four chunks are read as LL, LH, HL, HH coefficients,
    gated, and inverted with the IDWT. With the initial gates a fresh block is a 1x1 conv followed
    by nearest-neighbour upsampling with damped detail bands, so it starts free of imaging artefacts.
    """

    def __init__(
        self,
        channels: int,
        out_channels: int | None = None,
        temb_channels: int | None = None,
        gate_hidden: int = 16,
        wavelet: str = "haar",
    ):
        super().__init__()
        check_wavelet(wavelet)
        self.wavelet = wavelet
        self.out_channels = out_channels or channels
        self.expand = nn.Conv2d(channels, 4 * self.out_channels, kernel_size=1)
        self.gate = SubbandGate(channels, self.out_channels, temb_channels, gate_hidden)

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        # = wavelets.four_band_up(x, expand, gates), the gates folded into the 1x1 weights (and for Haar the
        # synthesis too; tested equal)
        return gated_expand_idwt2(x, self.expand.weight, self.expand.bias, self.gate(x, temb), self.wavelet)
