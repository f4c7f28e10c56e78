import pytest
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler

from wgunet import WGUNet
from wgunet.model.macs import count_parameters, macs_per_image
from wgunet.training.teacher import teacher_architecture

TINY = dict(sample_size=16, block_out_channels=(16, 32), layers_per_block=1, attention_resolutions=(8,),
            attention_head_dim=16, norm_num_groups=8)


def test_forward_shapes_features_and_timesteps():
    model = WGUNet(**TINY)
    x = torch.randn(3, 3, 16, 16)
    out = model(x, torch.tensor([1, 10, 999]), return_features=True)
    assert out.sample.shape == x.shape
    assert {k: tuple(v.shape[1:]) for k, v in out.features.items()} == {
        "down.0": (16, 8, 8), "down.1": (32, 8, 8), "mid": (32, 8, 8), "up.0": (32, 16, 16), "up.1": (16, 16, 16)}
    # scalar, 0-dim and per-sample timesteps agree
    a = model(x, 5).sample
    b = model(x, torch.tensor(5)).sample
    c = model(x, torch.full((3,), 5)).sample
    assert torch.equal(a, b) and torch.equal(a, c)
    assert model(x, 5, return_dict=False)[0].shape == x.shape
    assert model(x, 5).features is None


def test_the_model_depends_on_time_and_learns():
    model = WGUNet(**TINY)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.allclose(model(x, 1).sample, model(x, 900).sample)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    target = torch.randn_like(x)
    losses = []
    for _ in range(30):
        loss = (model(x, 10).sample - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_save_and_reload_are_bit_identical(tmp_path):
    model = WGUNet(**TINY, wavelet="db2").eval()
    with torch.no_grad():
        for p in model.parameters():  # move off the initialisation so every weight matters
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    reloaded = WGUNet.from_pretrained(tmp_path).eval()
    assert reloaded.config.wavelet == "db2" and list(reloaded.config.block_out_channels) == [16, 32]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x, 7).sample, reloaded(x, 7).sample)


@pytest.mark.parametrize("pipeline_class,scheduler_class", [(DDPMPipeline, DDPMScheduler), (DDIMPipeline, DDIMScheduler)])
def test_runs_inside_diffusers_pipelines_and_reloads(tmp_path, pipeline_class, scheduler_class):
    # eval(): from_pretrained returns eval mode, and attention picks a different kernel in train mode
    pipeline = pipeline_class(unet=WGUNet(**TINY).eval(), scheduler=scheduler_class(num_train_timesteps=50))
    images = pipeline(batch_size=2, num_inference_steps=5, output_type="np",
                      generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 16, 16, 3)
    pipeline.save_pretrained(tmp_path)
    reloaded = pipeline_class.from_pretrained(tmp_path)
    assert isinstance(reloaded.unet, WGUNet)
    again = reloaded(batch_size=2, num_inference_steps=5, output_type="np",
                     generator=torch.Generator().manual_seed(0)).images
    assert (images == again).all()


@pytest.mark.parametrize("bad,message", [
    (dict(sample_size=18, block_out_channels=(16, 32, 32)), "not divisible by 2\\*\\*2 = 4"),
    (dict(block_out_channels=(12, 32)), "not divisible by norm_num_groups"),
    (dict(attention_resolutions=(5,)), "not resolutions of this model"),
    (dict(attention_head_dim=12), "not divisible by attention_head_dim"),
    (dict(wavelet="haarr"), "unknown or unsupported wavelet"),
])
def test_configs_that_cannot_work_fail_at_construction(bad, message):
    with pytest.raises(ValueError, match=message):
        WGUNet(**{**TINY, **bad})


def test_stats_of_the_cifar10_teacher_and_the_default_student():
    from wgunet.training.config import load_config

    teacher = teacher_architecture("google/ddpm-cifar10-32")
    assert round(count_parameters(teacher) / 1e6, 2) == 35.75
    student = WGUNet(**load_config("configs/default.yaml").student)
    assert macs_per_image(teacher) >= 8 * macs_per_image(student)


def test_macs_grow_with_width():
    small, wide = WGUNet(**TINY), WGUNet(**{**TINY, "block_out_channels": (32, 64), "attention_head_dim": 32})
    assert macs_per_image(wide) > 3 * macs_per_image(small)


def test_an_export_loads_in_plain_diffusers_after_import_wgunet(tmp_path):
    """diffusers imports no module a folder names; `import wgunet` registers WGUNet (the README's loading line)."""
    import subprocess
    import sys

    DDPMPipeline(unet=WGUNet(**TINY), scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(tmp_path)
    load = (f"from diffusers import DDPMPipeline\npipeline = DDPMPipeline.from_pretrained({str(tmp_path)!r})\n"
            "print(type(pipeline.unet).__name__, pipeline(batch_size=1, num_inference_steps=2, output_type='np').images.shape)")
    without = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True)
    assert without.returncode != 0 and "wgunet.model.unet" in without.stderr
    with_import = subprocess.run([sys.executable, "-c", "import wgunet\n" + load], capture_output=True, text=True)
    assert with_import.returncode == 0, with_import.stderr[-2000:]
    assert with_import.stdout.strip().endswith("WGUNet (1, 16, 16, 3)")


def test_gradient_checkpointing_gives_the_same_gradients():
    """enable_gradient_checkpointing() (config gradient_checkpointing) recomputes activations; the gradients of
    every parameter are those of the plain backward pass."""
    model = WGUNet(**{**TINY, "gate_on_time": True})
    x, t = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([3, 40])

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        out = model(x, t, return_features=True)
        (out.sample.pow(2).mean() + out.features["mid"].mean()).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain = gradients()
    model.enable_gradient_checkpointing()
    assert model.gradient_checkpointing
    checkpointed = gradients()
    assert all(torch.allclose(plain[k], checkpointed[k], atol=1e-6, rtol=1e-5) for k in plain)
    assert any(v.abs().sum() > 0 for v in checkpointed.values())


@pytest.mark.slow
def test_compiled_wavelet_blocks_agree_with_eager():
    """The WG blocks under torch.compile (Inductor's generated C++ on CPU) give the eager outputs; the blocks, not
    the whole student, keep the test's compilation short."""
    from wgunet import WGDown, WGUp
    from wgunet.common.compilation import compile_problem, compiled

    if compile_problem():
        pytest.skip(f"torch.compile is not possible here: {compile_problem()}")
    blocks = torch.nn.Sequential(WGDown(8), WGUp(8)).eval()
    for block in blocks:
        torch.nn.init.normal_(block.gate.out.weight, std=0.5)
    x = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        eager = blocks(x)
        assert compiled(blocks) is blocks and blocks._compiled_call_impl is not None
        assert torch.allclose(blocks(x), eager, atol=1e-5)


def test_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    import wgunet.common.compilation as compilation

    monkeypatch.setattr(compilation, "compile_problem", lambda: "InvalidCxxCompiler: no working C++ compiler found")
    model = WGUNet(**TINY)
    with pytest.warns(UserWarning, match=r"torch.compile is not possible here \(InvalidCxxCompiler.*running eager"):
        assert compilation.compiled(model) is model
    assert model._compiled_call_impl is None
