"""Exports load where this package is not installed: diffusers' custom components with trust_remote_code, from a
folder and by Hub id (the Hub's API faked), as the model card shows; run in interpreters where `import wgunet`
fails."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from wgunet import WGUNet
from wgunet.model.portable import make_portable, module_source
from wgunet.sampling.samplers import run_sampling
from wgunet.training.card import load_snippet

BLOCKED = "import sys\nsys.modules['wgunet'] = None  # `import wgunet` raises ImportError from here on\n"


def without_wgunet(*code: str, cwd) -> str:
    """Run the ``code`` blocks (each dedented) in a fresh interpreter that cannot import wgunet."""
    program = BLOCKED + "\n".join(textwrap.dedent(block) for block in code)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def export(folder, wavelet: str = "haar"):
    torch.manual_seed(0)
    model = WGUNet(sample_size=16, block_out_channels=(16, 32), attention_resolutions=(8,), attention_head_dim=16,
                   norm_num_groups=8, wavelet=wavelet)
    DDPMPipeline(unet=model, scheduler=DDPMScheduler(num_train_timesteps=20)).save_pretrained(folder)
    make_portable(folder)
    return folder


def test_the_exported_module_is_the_packages_code_and_needs_neither_wgunet_nor_pywavelets(tmp_path):
    module = tmp_path / "wgunet_unet.py"
    module.write_text(module_source())
    folder = export(tmp_path / "db2", wavelet="db2")  # a non-Haar bank travels in the config
    assert len(json.loads((folder / "unet" / "config.json").read_text())["wavelet_filters"]) == 4
    x, t = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([3, 9])
    with torch.no_grad():
        expected = WGUNet.from_pretrained(folder / "unet")(x, t).sample
    torch.save({"x": x, "t": t, "expected": expected}, tmp_path / "io.pt")
    without_wgunet(f"""
        sys.modules['pywt'] = None
        import torch
        from wgunet_unet import WGUNet
        io = torch.load({str(tmp_path / 'io.pt')!r})
        model = WGUNet.from_pretrained({str(folder / 'unet')!r})
        with torch.no_grad():
            assert torch.equal(model(io["x"], io["t"]).sample, io["expected"])
        """, cwd=tmp_path)


def test_the_model_cards_snippet_loads_a_local_export_and_draws_sample_pys_images(tmp_path):
    folder = export(tmp_path / "export")
    run_sampling(str(folder), 4, tmp_path / "samples", scheduler="ddpm")
    out = without_wgunet(load_snippet(str(folder), remote_code=True), f"""
        import numpy as np
        np.save({str(tmp_path / 'snippet.npy')!r}, (images * 255).round().astype(np.uint8))
        from diffusers import AutoModel
        unet = AutoModel.from_pretrained({str(folder / 'unet')!r}, trust_remote_code=True)
        print(type(pipeline).__name__, type(pipeline.unet).__name__, type(unet).__name__)
        """, cwd=tmp_path)
    assert "DDPMPipeline WGUNet WGUNet" in out
    assert np.array_equal(np.load(tmp_path / "snippet.npy"), np.load(tmp_path / "samples" / "samples.npz")["images"])
    assert "were passed to WGUNet, but are not expected" not in out  # auto_map is the model's own config key


def fake_hub(folder, repo_id: str, cache) -> str:
    """Code that serves the files of export ``folder`` as Hub repository ``repo_id`` through huggingface_hub's API
    as diffusers calls it: model_info lists the uploaded files, downloads read them."""
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return f"""
        import shutil
        from pathlib import Path
        from types import SimpleNamespace
        import diffusers.pipelines.pipeline_utils as pipeline_utils
        import diffusers.utils.dynamic_modules_utils as dynamic_modules

        uploaded, cache = Path({str(folder)!r}), Path({str(cache)!r})
        def model_info(repo_id, **kwargs):
            assert repo_id == {repo_id!r}
            return SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in {files!r}], sha="0" * 40)
        def snapshot_download(repo_id, allow_patterns=None, **kwargs):
            shutil.copytree(uploaded, cache, dirs_exist_ok=True)
            return str(cache)
        def hf_hub_download(repo_id, filename, subfolder=None, **kwargs):
            return str(Path(snapshot_download(repo_id)) / (subfolder or "") / filename)
        pipeline_utils.model_info, pipeline_utils.snapshot_download = model_info, snapshot_download
        pipeline_utils.hf_hub_download = hf_hub_download
        dynamic_modules.model_info, dynamic_modules.hf_hub_download = model_info, hf_hub_download
        """


def test_a_pushed_export_loads_by_hub_id_through_diffusers_online_branch(tmp_path):
    """Without the module in unet/ this branch raises "unet/wgunet.model.unet.py as defined in model_index.json does not
    exist"."""
    folder = export(tmp_path / "export")
    out = without_wgunet(fake_hub(folder, "someone/wg-student", tmp_path / "hub_cache"),
                         load_snippet("someone/wg-student", remote_code=True), """
        print(type(pipeline.unet).__name__, images.shape)
        """, cwd=tmp_path)
    assert "WGUNet (4, 16, 16, 3)" in out
