"""Haar DWT forward at x = (32, 128, 32, 32) float32 on this CPU: wgunet vs x.clone(), ptwt, pytorch_wavelets;
then WG-Down and WG-Up (Haar, gates folded into the filters) against the four-band formulation they replace,
forward and forward + backward, each as a multiple of x.clone().

    make bench-wavelets        # builds .venv-bench with the peers, then runs this file

Each timing is the median of several rounds of repeated calls, all in this one process, so the ratios
compare like with like. Two conditions: "hot" calls each transform on the same tensor, which then sits
in the 32 MiB L3 cache (x.clone() is unusually cheap there); "cold" rotates through a pool of inputs
larger than L3, as activations arrive inside a network. Peers that are not installed are skipped.
Rows marked torch.compile are the steady state after compilation (Inductor's C++ on CPU); the compile time of
each, paid once at its first call, is printed apart; where torch.compile cannot run they are skipped, with why.
"""

from __future__ import annotations

import itertools
import statistics
import time

import torch

from wgunet.common.compilation import compile_problem
from wgunet.model.wavelets import dwt2, gated_dwt2, gated_expand_idwt2, idwt2

COMPILE_SECONDS: dict[str, float] = {}


def timed_compile(name: str, fn):
    """``torch.compile(fn)``, whose first call without and with gradients (each compiles a graph) is timed into
    COMPILE_SECONDS. Only called where compile_problem() is None."""
    fast = torch.compile(fn, dynamic=False)

    def call(*args):
        key = f"{name} ({'forward + backward' if torch.is_grad_enabled() else 'forward'})"
        if key in COMPILE_SECONDS:
            return fast(*args)
        start = time.perf_counter()
        out = fast(*args)
        COMPILE_SECONDS[key] = time.perf_counter() - start
        return out
    return call


def median_ms(fn, inputs: list[torch.Tensor], repeats: int = 20, rounds: int = 9) -> float:
    cycle = itertools.cycle(inputs)
    for _ in range(3):
        fn(next(cycle))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn(next(cycle))
        times.append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(times)


ON_BANDS = ("wgunet idwt2 (haar), on bands", "wgunet idwt2 (haar), torch.compile, on bands")  # take dwt2's output


def transforms() -> dict:
    found = {"x.clone()": torch.clone, "wgunet dwt2 (haar)": dwt2, "wgunet idwt2 (haar), on bands": idwt2}
    if compile_problem() is None:
        found["wgunet dwt2 (haar), torch.compile"] = timed_compile("dwt2", dwt2)
        found["wgunet idwt2 (haar), torch.compile, on bands"] = timed_compile("idwt2", idwt2)
    found["wgunet dwt2 (db2, conv path)"] = lambda x: dwt2(x, "db2")
    try:
        import ptwt

        found["ptwt wavedec2 (haar)"] = lambda x: ptwt.wavedec2(x, "haar", level=1, mode="zero")
    except ImportError as error:
        print(f"ptwt not installed ({error}); run `make bench-wavelets`")
    try:
        from pytorch_wavelets import DWTForward

        found["pytorch_wavelets DWTForward (haar)"] = DWTForward(J=1, wave="haar", mode="zero")
    except ImportError as error:
        print(f"pytorch_wavelets not installed ({error}); run `make bench-wavelets`")
    return found


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    shape = (32, 128, 32, 32)
    pool = [torch.randn(shape) for _ in range(10)]  # 160 MiB, five times the L3 cache
    conditions = {"hot": pool[:1], "cold": pool}
    results = {}
    for condition, inputs in conditions.items():
        bands = [dwt2(x) for x in inputs]
        for name, fn in transforms().items():
            results[name, condition] = median_ms(fn, bands if name in ON_BANDS else inputs)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, x = {shape} float32, no grad\n")
    print("| transform | hot ms | hot / clone | cold ms | cold / clone | cold, vs wgunet haar |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in transforms():
        hot, cold = results[name, "hot"], results[name, "cold"]
        print(
            f"| {name} | {hot:.2f} | {hot / results['x.clone()', 'hot']:.1f}x | {cold:.2f} | "
            f"{cold / results['x.clone()', 'cold']:.1f}x | {cold / results['wgunet dwt2 (haar)', 'cold']:.1f}x |"
        )


def block_functions(channels: int) -> dict:
    """name -> function of x; gates and 1x1 weights fixed."""
    gates = torch.rand(32, 4, channels, 1, 1)
    weight, bias = torch.randn(4 * channels, channels, 1, 1) / channels**0.5, torch.zeros(4 * channels)
    functions = {"WG-Down, gates folded (now)": lambda x: gated_dwt2(x, gates)}
    if compile_problem() is None:
        functions["WG-Down, gates folded, torch.compile"] = timed_compile("WG-Down", lambda x: gated_dwt2(x, gates))
    return functions | {
        "WG-Down, four bands (before)": lambda x: (gates * dwt2(x)).sum(1),
        "WG-Up incl. its 1x1 expand, folded (now)": lambda x: gated_expand_idwt2(x, weight, bias, gates),
        "WG-Up incl. its 1x1 expand, four bands (before)": lambda x: idwt2(
            gates * torch.nn.functional.conv2d(x, weight, bias).view(32, 4, channels, *x.shape[-2:])),
    }


def blocks() -> None:
    shape = (32, 128, 32, 32)
    pool = [torch.randn(shape) for _ in range(10)]
    functions = block_functions(shape[1])
    rows = {}
    for condition, inputs in {"hot": pool[:1], "cold": pool}.items():
        clone = median_ms(torch.clone, inputs)
        for name, fn in functions.items():
            with torch.no_grad():
                forward = median_ms(fn, inputs)
            leaves = [x.clone().requires_grad_() for x in inputs]
            both = median_ms(lambda x: fn(x).sum().backward(), leaves, repeats=10, rounds=5)
            rows[name, condition] = (forward / clone, both / clone)
    print(f"\nWG blocks (Haar), x = {shape} float32; multiples of x.clone() in the same condition\n")
    print("| block | forward, hot | forward, cold | forward + backward, hot | forward + backward, cold |")
    print("|---|---:|---:|---:|---:|")
    for name in functions:
        (fh, bh), (fc, bc) = rows[name, "hot"], rows[name, "cold"]
        print(f"| {name} | {fh:.1f}x | {fc:.1f}x | {bh:.1f}x | {bc:.1f}x |")
    if compile_problem() is not None:
        print(f"\ntorch.compile rows skipped: it cannot run here ({compile_problem()})")
    else:
        print("\ntorch.compile, first call (compilation), apart from the steady state above: "
              + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in COMPILE_SECONDS.items()))


if __name__ == "__main__":
    main()
    blocks()
