"""The command lines of train.py, sample.py and eval.py, also installed as wgunet-train, wgunet-sample and
wgunet-eval. Kept apart from the ``wgunet`` package, whose import loads torch and diffusers (it registers WGUNet
with diffusers): nothing here imports either before the arguments are parsed, so ``--help`` answers at once."""
