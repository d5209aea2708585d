"""`bpnas demo`: the whole product on the embedded digits data set, printed as tables.

float training (reshaped) -> uniform (8,8)/(4,4)/(3,3)/(2,2) PTQ and QAT -> BP-NAS search at b_max ->
retrain -> export -> run on every installed target -> benchmark table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["run_demo", "DemoPreset"]

UNIFORM_PAIRS = ((8, 8), (4, 4), (3, 3), (2, 2))


@dataclass(frozen=True)
class DemoPreset:
    float_epochs: int
    qat_epochs: int
    search_epochs: int
    profile_runs: int


FULL = DemoPreset(float_epochs=15, qat_epochs=6, search_epochs=8, profile_runs=200)
QUICK = DemoPreset(float_epochs=3, qat_epochs=1, search_epochs=1, profile_runs=10)


def _section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 100 - len(title)), flush=True)


def _stack(loader: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def run_demo(
    out_dir: str | Path | None = None,
    *,
    epochs: int | None = None,
    b_max: float | None = None,
    seed: int = 0,
    quick: bool = False,
    task: str = "classify",
) -> dict[str, object]:
    """Run the demo and return its measured figures (also printed). ``task="detect"`` runs the detection
    demo instead (``sdk.demo_detect``: synthetic scenes, b_max 4 by default, out_dir runs/demo-detect)."""
    from sdk.errors import InputError

    if task == "detect":
        from sdk.demo_detect import run_detect_demo

        if epochs is not None:
            raise InputError(
                "--epochs applies to the classification demo; the detection demo uses its preset."
            )
        return run_detect_demo(
            out_dir or "runs/demo-detect", b_max=4.0 if b_max is None else b_max, seed=seed, quick=quick
        )
    if task != "classify":
        raise InputError(f"task must be 'classify' or 'detect', got {task!r}.")
    import sdk

    b_max = 3.0 if b_max is None else b_max
    preset = QUICK if quick else FULL
    if epochs is not None:
        preset = DemoPreset(epochs, preset.qat_epochs, preset.search_epochs, preset.profile_runs)
    out = Path("runs/demo" if out_dir is None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = sdk.data.digits(seed=seed)
    model, float_acc, rows = _float_and_uniform(data, preset, seed)
    qmodel, mp_row = _search_and_retrain(model, data, preset, b_max, seed)
    rows.append(mp_row)
    _print_accuracy_table(float_acc, rows)
    bench = _export_and_bench(qmodel, data, preset, out)
    return {"float_acc": float_acc, "rows": rows, "bench": bench}


def _float_and_uniform(data: Any, preset: DemoPreset, seed: int) -> tuple[Any, float, list[tuple]]:
    """Float training, then every uniform pair by PTQ and QAT: (float model, its accuracy, table rows)."""
    import calibration
    import sdk
    from sdk.training import evaluate, train

    _section(f"float training: digits_cnn on sklearn digits, {preset.float_epochs} epochs, reshaping k=2")
    model = sdk.models.digits_cnn(num_classes=data.num_classes)
    t0 = time.perf_counter()
    train(model, data.train, data.val, epochs=preset.float_epochs, reshape=True, progress=False, seed=seed)
    float_acc = evaluate(model, data.test)
    print(f"float test accuracy {100 * float_acc:.2f}%  ({time.perf_counter() - t0:.1f} s)")

    _section("uniform quantization: PTQ (percentile calibration) and QAT")
    rows = []
    for w, a in UNIFORM_PAIRS:
        cfg = sdk.MixedPrecisionConfig.uniform(model, w, a)
        ptq = calibration.calibrate(sdk.quantize(model, cfg), data.train, method="percentile")
        ptq_acc = evaluate(ptq, data.test)
        qat = sdk.retrain(
            model, cfg, data.train, data.val, epochs=preset.qat_epochs, progress=False, seed=seed
        )
        qat_acc = evaluate(qat, data.test)
        rep = sdk.bops(model, cfg, input_shape=data.input_shape)
        print(f"\n({w},{a}):  PTQ {100 * ptq_acc:.2f}%  QAT {100 * qat_acc:.2f}%")
        print(rep.table())
        rows.append((f"uniform ({w},{a})", ptq_acc, qat_acc, rep))
    return model, float_acc, rows


def _search_and_retrain(
    model: Any, data: Any, preset: DemoPreset, b_max: float, seed: int
) -> tuple[Any, tuple]:
    """BP-NAS at ``b_max`` with the paper's candidates, then QAT of its config: (qmodel, table row)."""
    import sdk
    from sdk.training import evaluate

    _section(f"BP-NAS search: b_max = {b_max} bits, the paper's 8 candidates")
    weights_loader, arch_loader = data.search_split()
    result = sdk.search(
        model,
        weights_loader,
        arch_loader,
        b_max=b_max,
        epochs=preset.search_epochs,
        seed=seed,
        progress=False,
    )
    print(result.certificate.table())
    print(
        f"inside budget: avg bits {result.certificate.avg_bits:.3f} <= {b_max}  (repaired: {result.repaired})"
    )
    qmodel = sdk.retrain(
        model, result.config, data.train, data.val, epochs=preset.qat_epochs, progress=False, seed=seed
    )
    mp_acc = evaluate(qmodel, data.test)
    return qmodel, (f"BP-NAS b_max={b_max}", float("nan"), mp_acc, result.certificate)


def _print_accuracy_table(float_acc: float, rows: list[tuple]) -> None:
    print(f"\n{'model':<22} {'PTQ acc':>8} {'QAT acc':>8} {'avg bits':>9} {'B-Comp':>8} {'W-Comp':>8}")
    print(f"{'float':<22} {100 * float_acc:>7.2f}% {'':>8} {32:>9.2f} {1:>7.2f}x {1:>7.2f}x")
    for name, p_acc, q_acc, rep in rows:
        ptq_txt = f"{100 * p_acc:>7.2f}%" if p_acc == p_acc else f"{'-':>8}"
        print(
            f"{name:<22} {ptq_txt} {100 * q_acc:>7.2f}% {rep.avg_bits:>9.3f} "
            f"{rep.b_comp:>7.2f}x {rep.w_comp:>7.2f}x"
        )


def _export_and_bench(qmodel: Any, data: Any, preset: DemoPreset, out: Path) -> list[tuple]:
    """Export to every installed target, then accuracy, agreement with torch and latency per target."""
    import sdk
    import targets

    _section("export and run on every installed target")
    # targets that need power-of-two scales (hls4ml: docs/fpga.md) cannot take this calibrated model
    avail = targets.available(any_scales=True)
    x_test, y_test = _stack(data.test)
    bundle = sdk.export(
        qmodel.eval(), out / "digits.bpnas", example_input=x_test[:1], targets=avail, labels=list(data.labels)
    )
    with torch.no_grad():  # retrain trained the BN-folded form, so the bundle holds exactly this model
        ref = qmodel.eval()(x_test).argmax(1).numpy()
    print(f"bundle {bundle}")
    print(bundle.manifest.precision_table())
    bench = []
    for name in avail:
        p = sdk.load(out / "digits.bpnas", target=name)
        pred = np.asarray(p.predict(x_test.numpy())).argmax(1)
        acc = float((pred == y_test.numpy()).mean())
        agree = float((pred == ref).mean())
        prof = p.profile(runs=preset.profile_runs, warmup=max(2, preset.profile_runs // 10))
        bench.append((name, acc, agree, prof))
    print(
        f"\n{'target':<12} {'test acc':>9} {'= torch':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'fps':>9} {'deployed bits':>14} {'upcast':>7}"
    )
    for name, acc, agree, prof in bench:
        upcast = f"{len(prof.upcast_layers)}/{len(prof.searched_pairs)}"
        print(
            f"{name:<12} {100 * acc:>8.2f}% {100 * agree:>7.2f}% {prof.p50_ms:>8.3f} {prof.p90_ms:>8.3f} "
            f"{prof.fps:>9.1f} {prof.deployed_bits:>14.2f} {upcast:>7}"
        )
    return bench
