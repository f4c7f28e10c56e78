"""Training: config, data, the teacher's taps, the losses, the loop, run folders, state, evaluation during training, export (model card, Hub)."""
