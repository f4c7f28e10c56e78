"""The latent pipeline: denoise latents with any diffusers scheduler, then decode them with the autoencoder, as
diffusers' LDMPipeline does, but for a VQModel or an AutoencoderKL (``vae``), with per-image generators and the
scheduler options (eta, use_clipped_model_output) the pixel pipelines take.

This module imports torch and diffusers only: an exported latent model carries it as ``wgunet_pipeline.py``
(wgunet.model.portable), so that ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` runs this code.
"""

from __future__ import annotations

import inspect

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor


class WGUNetLatentPipeline(DiffusionPipeline):
    """Unconditional latent diffusion: ``unet`` denoises latents scaled by ``vae.config.scaling_factor``."""

    def __init__(self, unet: torch.nn.Module, vae: torch.nn.Module, scheduler) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler)

    @torch.no_grad()
    def __call__(self, batch_size: int = 1, generator: torch.Generator | list[torch.Generator] | None = None,
                 num_inference_steps: int = 50, output_type: str = "pil", return_dict: bool = True,
                 **step_options) -> ImagePipelineOutput | tuple:
        """``step_options``: passed to ``scheduler.step`` where it takes them (eta, use_clipped_model_output)."""
        config = self.unet.config
        shape = (batch_size, config.in_channels, config.sample_size, config.sample_size)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        latents = latents * self.scheduler.init_noise_sigma
        self.scheduler.set_timesteps(num_inference_steps)
        accepted = inspect.signature(self.scheduler.step).parameters
        options = {k: v for k, v in {**step_options, "generator": generator}.items() if k in accepted}
        for t in self.progress_bar(self.scheduler.timesteps):
            prediction = self.unet(self.scheduler.scale_model_input(latents, t), t).sample
            latents = self.scheduler.step(prediction, t, latents, **options).prev_sample
        # a VQModel quantises in decode(), as LDMPipeline decodes
        decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample.float()
        images = (decoded / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy()
        if output_type == "pil":
            images = self.numpy_to_pil(images)
        elif output_type != "np":
            raise ValueError(f"output_type {output_type!r}: use 'pil' or 'np'")
        return ImagePipelineOutput(images=images) if return_dict else (images,)
