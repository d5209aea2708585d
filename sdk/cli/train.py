"""``bpnas search``, ``bpnas retrain`` and ``bpnas quantize``: float weights -> a quantized checkpoint.

They chain through files: search leaves RUN/float.pt (the float model it searched on), RUN/config.json and
RUN/result.json (and RUN/model.pt with --retrain-epochs); retrain and quantize start from RUN (or float.pt,
or --model/--weights) and write one quantized checkpoint that ``bpnas export`` takes without further options.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sdk.cli._common import (
    Formatter,
    add_data_args,
    add_model_args,
    add_search_args,
    check_device,
    float_model,
    load_data,
    pair,
    progress,
    read_config,
    say,
    search_keywords,
)
from sdk.errors import InputError

__all__ = ["add_parsers"]

UNIFORM_BASELINES = ((8, 8), (4, 4), (3, 3))  # PTQ points next to the searched config in metrics.json


def add_parsers(sub: Any) -> None:
    s = sub.add_parser(
        "search", help="float-train, then BP-NAS search a mixed-precision config", formatter_class=Formatter
    )
    add_model_args(s)
    add_data_args(s)
    add_search_args(s)
    s.add_argument(
        "--float-epochs", type=int, default=20, help="float pre-training epochs (0: use --weights as is)"
    )
    _common_tail(s, "runs/search", "output folder: float.pt, config.json, result.json, metrics.json")
    s.set_defaults(func=cmd_search)

    r = sub.add_parser(
        "retrain",
        help="QAT-retrain a searched config on the search's float weights",
        formatter_class=Formatter,
    )
    r.add_argument(
        "--from", dest="source", default=None, help="a search run folder or a float checkpoint (float.pt)"
    )
    add_model_args(r)
    add_data_args(r)
    r.add_argument(
        "--config", default=None, help="config.json, result.json or a run folder (default: --from's)"
    )
    r.add_argument("--float-epochs", type=int, default=0, help="float training first (without float weights)")
    r.add_argument("--epochs", type=int, default=30, help="QAT epochs")
    _common_tail(r, "runs/retrain/model.pt", "quantized checkpoint file (a folder gets model.pt inside)")
    r.set_defaults(func=cmd_retrain)

    q = sub.add_parser(
        "quantize", help="post-training quantization (no training) to a checkpoint", formatter_class=Formatter
    )
    q.add_argument(
        "--from", dest="source", default=None, help="a search run folder or a float checkpoint (float.pt)"
    )
    add_model_args(q)
    add_data_args(q)
    q.add_argument("--config", default=None, help="config.json, result.json or a run folder")
    q.add_argument("--bits", type=pair, default=None, help="uniform W,A instead of --config (e.g. 8,8)")
    q.add_argument(
        "--observer", default="percentile", help="activation calibration: minmax|percentile|mse|entropy"
    )
    q.add_argument("--calib-batches", type=int, default=8, help="calibration batches from the training split")
    _common_tail(q, "runs/quantize/model.pt", "quantized checkpoint file (a folder gets model.pt inside)")
    q.set_defaults(func=cmd_quantize)


def _common_tail(p: argparse.ArgumentParser, out: str, what: str) -> None:
    p.add_argument("--device", default="cpu", help="torch device for training: cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=out, help=what)


# -- the float starting point --------------------------------------------------------------------------------
class _Start:
    """The float model a verb starts from, its spec, its data and where that came from."""

    def __init__(self, args: argparse.Namespace) -> None:
        from sdk.checkpoint import load_checkpoint

        self.meta: dict[str, Any] = {}
        self.run_dir: Path | None = None
        source = getattr(args, "source", None)
        if source and (args.model or args.weights):
            raise InputError("pass --from (a search run or float.pt) or --model/--weights, not both.")
        if source:
            path = Path(source)
            if path.is_dir():
                self.run_dir, path = path, path / "float.pt"
            model, self.meta = load_checkpoint(path)
            if self.meta["kind"] != "float":
                raise InputError(
                    f"--from {source!r} is a quantized checkpoint; pass the run folder or its float.pt."
                )
            spec = args.data or self.meta.get("data")
            if not spec:
                raise InputError(f"{source!r} does not record its data; pass --data.")
            if args.mean is None and self.meta.get("preprocess"):
                args.mean, args.std = self.meta["preprocess"]["mean"], self.meta["preprocess"]["std"]
            self.data = load_data(args, spec)
            self.data_spec = spec
            from sdk.quant.functional_adds import modularize_adds

            self.model, self.spec = modularize_adds(model), self.meta["model_spec"]
        else:
            if not args.data:
                raise InputError("--data is required (or --from a search run / float checkpoint).")
            self.data_spec = args.data
            self.data = load_data(args, args.data)
            self.model, self.spec = float_model(args, self.data)

    def save(self, path: Path, model: Any) -> Path:
        from sdk.checkpoint import save_checkpoint

        d = self.data
        return save_checkpoint(
            path,
            model,
            model=self.spec,
            num_classes=d.num_classes,
            in_channels=d.input_shape[1],
            data=self.data_spec,
            input_shape=d.input_shape,
            preprocess=d.preprocess,
            labels=d.labels,
        )


def _config_for(args: argparse.Namespace, start: _Start | None, model: Any) -> Any:
    import sdk

    if getattr(args, "bits", None) is not None:
        if args.config:
            raise InputError("pass --config or --bits, not both.")
        return sdk.MixedPrecisionConfig.uniform(model, *args.bits)
    where = args.config or (start.run_dir if start is not None else None)
    if where is None:
        raise InputError("--config is required (config.json, result.json or a search run folder).")
    cfg = read_config(where)
    cfg.validate_for(model)
    return cfg


def _float_train(args: argparse.Namespace, model: Any, data: Any, epochs: int) -> float:
    from sdk.training import evaluate, train

    if epochs > 0:
        say(args, f"float training {epochs} epoch(s) with weight reshaping")
        train(
            model,
            data.train,
            data.val,
            epochs=epochs,
            reshape=True,
            seed=args.seed,
            device=args.device,
            progress=progress(args),
        )
    return float(evaluate(model, data.test, device=args.device))


# -- verbs ---------------------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    from sdk.nas.api import search
    from sdk.outputs import dir_out, write_text_atomic

    check_device(args.device)
    out = dir_out(args.out)
    start = _Start(args)
    model, data = start.model, start.data
    if args.float_epochs == 0 and not args.weights:
        raise InputError("--float-epochs 0 needs --weights (the float model to search on).")
    _check_search(args, model, data)
    float_acc = _float_train(args, model, data, args.float_epochs)
    say(args, f"float test accuracy {100 * float_acc:.2f}%")
    start.save(out / "float.pt", model)
    weights, arch = data.search_split()
    result = search(model, weights, arch, **search_keywords(args, progress=progress(args)))
    write_text_atomic(out / "config.json", json.dumps(result.config.to_dict(), indent=1))
    result.to_json(out / "result.json")
    metrics = _metrics(args, model, data, result.config, float_acc)
    if args.retrain_epochs > 0:
        qmodel = _retrain(args, model, data, result.config, args.retrain_epochs)
        metrics["searched"]["qat_acc"] = _acc(qmodel, data)
        start.save(out / "model.pt", qmodel)
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=1))
    say(args, result.summary())
    say(
        args,
        f"wrote {out}/float.pt, config.json, result.json, metrics.json"
        + (", model.pt" if args.retrain_epochs else ""),
    )
    return 0


def _check_search(args: argparse.Namespace, model: Any, data: Any) -> None:
    """Refuse an unknown --target or a budget (--b-max, --weight-kb, --cycles) no candidate config meets,
    before any training: the checks ``sdk.search`` makes first."""
    from sdk.nas.api import BUDGET_KEYWORDS, check_search_budget

    kw = search_keywords(args, progress=False)
    check_search_budget(model, data.input_shape, **{k: kw[k] for k in BUDGET_KEYWORDS})


def _acc(qmodel: Any, data: Any) -> float:
    from sdk.training import evaluate

    return float(evaluate(qmodel, data.test))


def _metrics(
    args: argparse.Namespace, model: Any, data: Any, config: Any, float_acc: float
) -> dict[str, Any]:
    """PTQ accuracy of the searched config and of uniform baselines (the report's accuracy-vs-bits plot)."""
    import sdk
    from calibration import ptq

    def point(cfg: Any) -> dict[str, Any]:
        q = ptq(model, cfg, data.train, num_batches=4)
        return {
            "avg_bits": sdk.bops(model, cfg, input_shape=data.input_shape).avg_bits,
            "ptq_acc": _acc(q, data),
        }

    uniform = []
    for w, a in UNIFORM_BASELINES:
        uniform.append({"bits": [w, a], **point(sdk.MixedPrecisionConfig.uniform(model, w, a))})
    return {"float_acc": float_acc, "searched": point(config), "uniform": uniform}


def _retrain(args: argparse.Namespace, model: Any, data: Any, config: Any, epochs: int) -> Any:
    from sdk.nas.qat import retrain

    say(args, f"QAT retraining {epochs} epoch(s)")
    return retrain(
        model,
        config,
        data.train,
        data.val,
        epochs,
        seed=args.seed,
        progress=progress(args),
        device=args.device,
    )


def cmd_retrain(args: argparse.Namespace) -> int:
    from sdk.outputs import file_out

    check_device(args.device)
    out = file_out(args.out, "model.pt")
    start = _Start(args)
    config = _config_for(args, start, start.model)  # checked before any training
    if not args.source and not args.weights and args.float_epochs == 0:
        raise InputError(
            "retrain needs float weights: --from RUN (a search run folder or float.pt), --weights FILE, "
            "or --float-epochs N to train them first."
        )
    if args.float_epochs:
        _float_train(args, start.model, start.data, args.float_epochs)
    qmodel = _retrain(args, start.model, start.data, config, args.epochs)
    acc = _acc(qmodel, start.data)
    say(args, f"test accuracy {100 * acc:.2f}%")
    start.save(out, qmodel)
    _record_qat(start.run_dir, config, acc)
    say(args, f"wrote {out}")
    return 0


def _record_qat(run_dir: Path | None, config: Any, acc: float) -> None:
    """Add the retrained accuracy to RUN/metrics.json when it retrained the run's own config (the report)."""
    from sdk.outputs import write_text_atomic

    if run_dir is None or not (run_dir / "metrics.json").is_file() or not (run_dir / "config.json").is_file():
        return
    if read_config(run_dir) != config:
        return
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    metrics["searched"]["qat_acc"] = acc
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=1))


def cmd_quantize(args: argparse.Namespace) -> int:
    from calibration import ptq
    from sdk.outputs import file_out

    check_device(args.device)
    out = file_out(args.out, "model.pt")
    start = _Start(args)
    if not args.source and not args.weights:
        raise InputError("quantize needs float weights: --weights FILE, or --from RUN / float.pt.")
    config = _config_for(args, start, start.model)
    qmodel = ptq(
        start.model,
        config,
        start.data.train,
        method=args.observer,
        num_batches=args.calib_batches,
        device=args.device,
        progress=progress(args),
    )
    say(args, f"test accuracy {100 * _acc(qmodel, start.data):.2f}% (PTQ, {args.observer})")
    start.save(out, qmodel)
    say(args, f"wrote {out}")
    return 0
