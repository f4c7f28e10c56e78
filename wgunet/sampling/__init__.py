"""Sampling: checkpoints loaded, samplers configured from the training schedule, resumable sample folders."""

# the samplers' names, defined once (torch-free, so the config reads them); samplers.SCHEDULERS gives each its
# diffusers scheduler class
SAMPLERS = ("ddpm", "ddim", "dpm++")
