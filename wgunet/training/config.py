"""Training configs: plain YAML mapped onto typed dataclasses, with ``key=value`` overrides.

An unknown key anywhere (YAML or command line) is an error that names the key and its closest match.
Model sections (``student``, ``unet``) are checked against the model constructors' arguments.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wgunet.common.errors import UserError
from wgunet.sampling import SAMPLERS
from wgunet.training.losses import FREQ_WEIGHTS


class ConfigError(UserError, ValueError):
    """A config that cannot be used; the message names the key and the fix."""


class ConfigLoader(yaml.SafeLoader):
    """YAML with YAML 1.2's booleans: only true/false. YAML 1.1 (PyYAML's default) also reads yes/no/on/off as
    booleans, which turned ``mixed_precision: no`` into False."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def _mapping_without_repeats(loader: ConfigLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping in which a key given twice is an error (PyYAML would keep the last one silently)."""
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
    if repeated:
        raise yaml.constructor.ConstructorError(None, None, f"key {', '.join(repeated)} given twice: keep one",
                                                node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


ConfigLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                             lambda loader, node: _mapping_without_repeats(loader, node, deep=True))


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=ConfigLoader)


@dataclass
class DataConfig:
    source: str = "patches:train"  # built-in photographs (patches:train, patches:heldout), an image folder, or a
    # Hugging Face datasets name
    sample_size: int = 32
    upscale: bool = False  # image folders: enlarge images smaller than sample_size (else they are refused)
    verify: str = "changed"  # image folders: decode every image at the start ("all") or those new or changed
    # since the folder was last checked ("changed": sizes and times kept in $WGUNET_CACHE or ~/.cache/wgunet)
    hflip: bool = True
    image_column: str | None = None  # datasets only; detected when None
    split: str = "train"  # Hugging Face datasets only
    patches_per_image: int = 256  # built-in set only: crops per photograph and scale
    num_workers: int | None = None  # data loader workers; None: chosen per source and machine (data.loader_workers)


@dataclass
class LossConfig:
    # L = L_DDPM + lambda_spatial * L_spatial + lambda_freq * L_freq (Yang et al., CVPR 2023); 0 switches a term off.
    lambda_ddpm: float = 1.0
    lambda_spatial: float = 0.1
    lambda_freq: float = 0.1
    # L_freq's per-frequency weight (wgunet.training.losses.FREQ_WEIGHTS): inverse_magnitude, the paper's
    # w = (|DFT(x0 resized)| + eps)^alpha; focal, w = |F_T - F_S|^focal_alpha / its maximum (Jiang et al., "Focal
    # Frequency Loss for Image Reconstruction and Synthesis", ICCV 2021); uniform, w = 1
    freq_weight: str = "inverse_magnitude"
    alpha: float = -1.0  # inverse_magnitude's exponent
    eps: float = 1e-2  # stabilises |DFT(x0)|^alpha where the clean image has no power
    focal_alpha: float = 1.0  # focal's exponent
    focal_log: bool = False  # focal: w = log(1 + |F_T - F_S|^focal_alpha) before the scaling
    focal_batch: bool = False  # focal: scaled by the batch's maximum rather than each image and channel's
    features: tuple[str, ...] = ("down", "mid", "up")  # which stages are matched, besides the output
    # Latent teachers only (pixel teachers: both are the image): the clean signal whose |DFT| weights L_freq at
    # each feature scale. OPEN: "latent" (default), the clean latent, which is the diffusion's x0 and what the
    # features encode; "image", the clean RGB image resized to each feature's size.
    freq_reference: str = "latent"


@dataclass
class EvalConfig:
    # what the EMA model is scored on every eval_every steps (wgunet.training.monitor); the same noise every time
    num_images: int = 64
    scheduler: str = "ddim"
    steps: int = 10  # denoising steps per image: few, so evaluation stays a small part of a run
    # real images the spectral scores compare with (at data.sample_size); null: the built-in held-out patches when
    # training on the built-in set, and required for any other data (the patches are another distribution)
    reference: str | None = None
    fid_ref: str | None = None  # FID reference statistics (.npz from `eval.py fid-ref`); FID only when given
    features: str = "auto"  # FID features; must be those fid_ref was made with
    bootstrap: int = 200  # resamples for the scores' 95% intervals
    seed: int = 0  # image i's noise comes from (seed, i), as in sample.py


@dataclass
class TrainConfig:
    mode: str = "distill"  # "distill": WG-UNet student from a teacher; "teacher": plain UNet2DModel, DDPM loss only
    teacher: str = "assets/teacher"  # Hub id or local folder (model or pipeline) of a diffusers UNet2DModel
    teacher_dtype: str = "auto"  # auto: bfloat16 / float16 under mixed_precision bf16 / fp16, else float32
    student_class: str = "WGUNet"  # the student's architecture: "WGUNet" or diffusers' "UNet2DModel"
    student: dict[str, Any] = field(default_factory=dict)  # the arguments of student_class
    unet: dict[str, Any] = field(default_factory=dict)  # UNet2DModel arguments, for mode "teacher"
    # mode "teacher": start from this UNet2DModel's weights (Hub id or folder; its architecture and schedule must be
    # unet's and scheduler's) instead of random ones: fine-tuning; None: from scratch
    init_from: str | None = None
    scheduler: dict[str, Any] = field(default_factory=dict)  # DDPMScheduler arguments, for mode "teacher"
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output_dir: str = "runs/default"
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100  # capped at 10% of max_steps (training.build_lr_schedule)
    # after the warmup: "cosine" decays to 0 at max_steps; "constant" holds lr (an open-ended run that may be
    # stopped and resumed with a larger max_steps any time, as DDPM (Ho et al., NeurIPS 2020) trained)
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    mixed_precision: str = "no"  # "no", "fp16", "bf16" (Accelerate)
    gradient_checkpointing: bool = False  # recompute the student's activations in the backward pass: less memory
    compile: bool = False  # torch.compile the trained model (the first steps then compile); eager where impossible
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    eval_every: int = 250  # 0: never; evaluates at every eval_every steps and at the end (see EvalConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # where the logged metrics also go: "auto" (TensorBoard when installed), "none", or an Accelerate tracker
    log_with: str = "auto"
    push_to_hub: bool = False  # push the final export (with its model card) to the Hub as hub_model_id
    hub_model_id: str | None = None


def _closest(key: str, known: list[str]) -> str:
    match = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (known keys: {', '.join(sorted(known))})"


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field's type and turn YAML lists into tuples where the field wants one."""
    origin = typing.get_origin(annotation)
    if value is None and not (origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(annotation)):
        raise ConfigError(f"{where} is empty: give it a value")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        return _coerce(value, next(a for a in options if a is not type(None)), where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        item = typing.get_args(annotation)[0]
        return tuple(_coerce(v, item, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML 1.1 reads 3e-4 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if annotation in (int, float, str, bool) and not isinstance(value, annotation) or (
        annotation is int and isinstance(value, bool)
    ):
        raise ConfigError(f"{where} must be {annotation.__name__}, got {value!r}")
    return value


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {prefix + key!r}{_closest(key, list(fields))}")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix + key} must be a mapping, got {value!r}")
            kwargs[key] = _build(hints[key], value, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hints[key], prefix + key)
    return cls(**kwargs)


def _check_arguments(section: str, values: dict[str, Any], constructor: Any) -> None:
    known = [p for p in inspect.signature(constructor).parameters if p != "self"]
    for key in values:
        if key not in known:
            raise ConfigError(f"unknown config key '{section}.{key}'{_closest(key, known)}")


def apply_override(values: dict[str, Any], override: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form key=value (e.g. max_steps=200)")
    dotted, raw = override.split("=", 1)
    *parents, leaf = dotted.strip().split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part!r} is not a section")
    node[leaf] = read_yaml(raw)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file's mapping; a missing, unreadable or non-mapping file is named."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found: pass one of configs/*.yaml or a path to your own")
    try:
        values = read_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.MarkedYAMLError as error:
        where = f"line {error.problem_mark.line + 1}, column {error.problem_mark.column + 1}: " if error.problem_mark else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML (in UTF-8): {where}{error.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML (in UTF-8): {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values, not a "
                          f"{type(values).__name__}")
    return values


def _merged(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in given.items():
        merged[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def load_run_config(path: str | Path | None, overrides: list[str], default: str | Path, resume: bool) -> TrainConfig:
    """train.py's config: the file ``path`` (or ``default``) with the ``key=value`` overrides; with ``resume``
    and a run already in its output_dir, that run's own config.yaml with only what the command line names on top
    (the file, when one is given, and the overrides), so that an omitted key keeps the run's value."""
    if resume:
        given = read_config_file(path) if path is not None else {}
        for override in overrides:
            apply_override(given, override)
        folder = given.get("output_dir") or read_config_file(default).get("output_dir") or TrainConfig.output_dir
        recorded = Path(str(folder)) / "config.yaml"
        if recorded.is_file():
            return load_config(None, base=_merged(read_config_file(recorded), given))
    return load_config(path if path is not None else default, overrides)


def load_config(path: str | Path | None = None, overrides: list[str] = (), base: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (or ``base``, or the defaults, when ``path`` is None) and apply ``key=value`` overrides."""
    values: dict[str, Any] = read_config_file(path) if path is not None else dict(base or {})
    for override in overrides:
        apply_override(values, override)
    config = _build(TrainConfig, values)
    from diffusers import DDPMScheduler, UNet2DModel

    from wgunet.model import STUDENT_CLASSES

    if config.mode not in ("distill", "teacher"):
        raise ConfigError(f"mode must be 'distill' or 'teacher', got {config.mode!r}")
    if config.student_class not in STUDENT_CLASSES:
        raise ConfigError(f"student_class must be one of {', '.join(STUDENT_CLASSES)}, got {config.student_class!r}")
    _check_arguments("student", config.student, STUDENT_CLASSES[config.student_class].__init__)
    _check_arguments("unet", config.unet, UNet2DModel.__init__)
    _check_arguments("scheduler", config.scheduler, DDPMScheduler.__init__)
    if config.mode == "teacher":
        check_model("unet", UNet2DModel, {"sample_size": config.data.sample_size, **config.unet}, config.data.sample_size)
        check_scheduler("scheduler", config.scheduler)
    unknown_stages = set(config.loss.features) - {"down", "mid", "up"}
    if unknown_stages:
        raise ConfigError(f"loss.features may hold 'down', 'mid', 'up'; got {sorted(unknown_stages)}")
    validate(config)
    return config


# What a library raises for arguments that describe no model (a wrong list length, a width that a group count
# does not divide, an unknown block name, a size the down-sampling cannot halve): turned into one line.
MODEL_COMPLAINTS = (ValueError, TypeError, AssertionError, IndexError, KeyError, RuntimeError, ZeroDivisionError,
                    NotImplementedError, AttributeError)


def check_model(section: str, cls: Any, arguments: dict[str, Any], size: int, in_channels: int | None = None) -> None:
    """Build ``cls(**arguments)`` on the meta device (no memory, no arithmetic) and run one forward pass of a
    ``size`` x ``size`` input through it: arguments that describe no working model are named before any work."""
    import torch

    try:
        with torch.device("meta"):
            model = cls(**arguments)
            channels = in_channels or model.config.in_channels
            model(torch.zeros(1, channels, size, size), torch.zeros(1, dtype=torch.long))
    except MODEL_COMPLAINTS as error:
        complaint = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
        raise ConfigError(f"{section} ({cls.__name__} arguments {arguments}) at {size}x{size} describes no working model: "
                          f"{type(error).__name__}: {complaint}. Check its lists (one entry per level), that "
                          f"norm_num_groups divides every width, the block names, and that {size} halves at every "
                          "level") from None


def check_scheduler(section: str, arguments: dict[str, Any]) -> None:
    """The noise schedule ``arguments`` describe, built once (cheap), its complaints named."""
    from diffusers import DDPMScheduler

    from wgunet.model.prediction import PREDICTION_TYPES

    if arguments.get("num_train_timesteps", 1) < 1:
        raise ConfigError(f"{section}.num_train_timesteps must be at least 1, got {arguments['num_train_timesteps']}")
    if arguments.get("prediction_type", "epsilon") not in PREDICTION_TYPES:
        raise ConfigError(f"{section}.prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got "
                          f"{arguments['prediction_type']!r}")
    try:
        betas = DDPMScheduler(**arguments).betas
    except MODEL_COMPLAINTS as error:
        raise ConfigError(f"{section} ({arguments}) describes no DDPM schedule: {type(error).__name__}: "
                          f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}") from None
    if not bool(((betas > 0) & (betas < 1)).all()):
        raise ConfigError(f"{section} ({arguments}) gives noise levels (betas) outside (0, 1): check beta_start, "
                          "beta_end and beta_schedule")


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


# (key, test, what the test requires): every number whose bad value would fail later or silently mislead.
VALUE_RULES: list[tuple[str, Any, str]] = [
    ("output_dir", lambda v: bool(v.strip()), "a folder path, not empty"),
    ("data.source", lambda v: bool(v.strip()), "patches:train, an image folder or a dataset name, not empty"),
    ("max_steps", _positive, "a positive number of steps"),
    ("seed", lambda v: 0 <= v < 2**32, "in [0, 2^32)"),
    ("eval.seed", lambda v: 0 <= v < 2**32, "in [0, 2^32)"),
    ("batch_size", _positive, "a positive number of images"),
    ("gradient_accumulation_steps", _positive, "at least 1"),
    ("lr", _positive, "positive"),
    ("weight_decay", _non_negative, ">= 0"),
    ("warmup_steps", _non_negative, ">= 0"),
    ("grad_clip", _non_negative, ">= 0 (0 switches clipping off)"),
    ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("checkpoint_every", _positive, "a positive number of steps"),
    ("keep_checkpoints", lambda v: v >= 1, ">= 1 (the newest checkpoint is what --resume continues from)"),
    ("log_every", _positive, "a positive number of steps"),
    ("eval_every", _non_negative, ">= 0 (0 switches evaluation during training off)"),
    ("eval.num_images", lambda v: v >= 2, ">= 2 (the spectral scores' intervals resample images)"),
    ("eval.steps", _positive, "a positive number of denoising steps"),
    ("eval.bootstrap", _non_negative, ">= 0"),
    ("adam_betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    ("data.sample_size", _positive, "a positive number of pixels"),
    ("data.patches_per_image", _positive, "positive"),
    ("data.num_workers", lambda v: v is None or v >= 0, ">= 0 (or null: chosen for the source and the machine)"),
    ("loss.lambda_ddpm", _non_negative, ">= 0 (0 switches the term off)"),
    ("loss.lambda_spatial", _non_negative, ">= 0 (0 switches the term off)"),
    ("loss.lambda_freq", _non_negative, ">= 0 (0 switches the term off)"),
    ("loss.eps", _positive, "positive (it keeps |DFT(x0)|^alpha finite)"),
    ("loss.focal_alpha", _positive, "positive"),
]
CHOICES = {"teacher_dtype": ("auto", "float32", "float16", "bfloat16"), "mixed_precision": ("no", "fp16", "bf16"),
           "lr_schedule": ("cosine", "constant"), "data.verify": ("changed", "all"),
           "log_with": ("auto", "none", "tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive"),
           "eval.scheduler": SAMPLERS,
           "loss.freq_reference": ("latent", "image"), "loss.freq_weight": FREQ_WEIGHTS, "eval.features": ("auto", "teacher", "inception", "dinov2")}


def _get(config: TrainConfig, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _floats(value: Any, prefix: str = "") -> list[tuple[str, float]]:
    if dataclasses.is_dataclass(value):
        return [f for field_ in dataclasses.fields(value) for f in _floats(getattr(value, field_.name), prefix + field_.name + ".")]
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in _floats(v, f"{prefix}{k}.")]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in _floats(v, prefix)]
    return [(prefix.rstrip("."), value)] if isinstance(value, float) else []


def validate(config: TrainConfig) -> None:
    """Every value in its allowed range; the message names the key, the value and what is allowed."""
    for key, value in _floats(config):
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}")
    for key, test, allowed in VALUE_RULES:
        value = _get(config, key)
        if not test(value):
            raise ConfigError(f"{key} must be {allowed}, got {value!r}")
    for key, choices in CHOICES.items():
        if _get(config, key) not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {_get(config, key)!r}")
    if config.loss.lambda_ddpm == config.loss.lambda_spatial == config.loss.lambda_freq == 0:
        raise ConfigError("loss.lambda_ddpm, loss.lambda_spatial and loss.lambda_freq are all 0: nothing would be trained")
    eval_reference(config)
    if config.push_to_hub and not config.hub_model_id:
        raise ConfigError("push_to_hub=true needs hub_model_id=NAME/MODEL, the repository to push to")
    if config.init_from is not None and config.mode != "teacher":
        raise ConfigError("init_from applies to mode=teacher (a teacher fine-tuned from a UNet2DModel); a student starts "
                          "from random weights, so remove init_from or set mode=teacher")
    if config.mode == "teacher" and config.unet.get("sample_size", config.data.sample_size) != config.data.sample_size:
        raise ConfigError(f"unet.sample_size {config.unet['sample_size']} differs from data.sample_size "
                          f"{config.data.sample_size}: the teacher learns at the data's size, so set them equal")
    student_size = config.student.get("sample_size") if config.mode == "distill" else None
    if student_size is not None and student_size != config.data.sample_size:
        raise ConfigError(f"student.sample_size {student_size} differs from data.sample_size {config.data.sample_size}: "
                          "the student learns at the data's size, so set them equal")


def eval_reference(config: TrainConfig) -> str | None:
    """The real images evaluation during training compares with: ``eval.reference``, or with null the built-in
    held-out patches when the training data is the built-in set. Other data needs its own reference."""
    if config.eval.reference is not None or not config.eval_every:
        return config.eval.reference
    if config.data.source.split(":")[0] == "patches":  # the built-in set (a wrong split is named by the data)
        return "patches:heldout"
    raise ConfigError(f"evaluation during training compares the model with real images of its data: set "
                      f"eval.reference=FOLDER to held-out images like those of data.source={config.data.source!r} "
                      "(eval.reference=patches:heldout to compare with the built-in photograph patches anyway), or "
                      "eval_every=0")


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """A YAML-ready dict of the config (tuples as lists), as written into every run folder."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))
