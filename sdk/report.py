"""``bpnas report``: one self-contained HTML page (PNGs inlined, and written beside it) for a search run
folder or a bundle.

Figures (matplotlib, the ``plots`` extra): per-layer bit allocation, accuracy vs average bits (the searched
config vs uniform PTQ baselines, from RUN/metrics.json), the barrier / E(SN) curve and the importance factors
over the search epochs (RUN/result.json), per-target latency (bench.json, or a short bench of the bundle);
and the effective-precision table the bundle recorded at export. A section without its input says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from sdk.errors import InputError

__all__ = ["write_report"]

_CSS = (
    "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
    "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ccc;padding:3px 8px}th{background:#f0f0f0}.up{color:#b00;font-weight:bold}"
    ".missing{color:#888;font-style:italic}"
)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise InputError("bpnas report needs matplotlib: pip install 'bpnas[plots]'.") from e
    return plt


def _png(draw: Callable[[Any], None]) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.4))
    try:
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
    finally:
        plt.close(fig)
    return buf.getvalue()


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{os.fspath(path)!r} is not readable JSON ({e}).") from e


# -- the figures ---------------------------------------------------------------------------------------------
def _bits_plot(layers: Mapping[str, Any]) -> Callable[[Any], None]:
    names = list(layers)

    def draw(ax: Any) -> None:
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [layers[n][0] for n in names], 0.4, label="weight bits")
        ax.bar([i + 0.2 for i in x], [layers[n][1] for n in names], 0.4, label="activation bits")
        ax.set_xticks(list(x), [n[-18:] for n in names], rotation=60, ha="right", fontsize=7)
        ax.set(ylabel="bits", title="Per-layer bit allocation")
        ax.legend(fontsize=8)

    return draw


def _accuracy_plot(metrics: Mapping[str, Any]) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        uni = sorted(metrics.get("uniform", []), key=lambda p: p["avg_bits"])
        ax.plot([p["avg_bits"] for p in uni], [100 * p["ptq_acc"] for p in uni], "o--", label="uniform (PTQ)")
        for p in uni:
            ax.annotate(f"{p['bits'][0]}/{p['bits'][1]}", (p["avg_bits"], 100 * p["ptq_acc"]), fontsize=7)
        s = metrics["searched"]
        ax.plot([s["avg_bits"]], [100 * s["ptq_acc"]], "r*", ms=12, label="mixed precision (PTQ)")
        if s.get("qat_acc") is not None:
            ax.plot([s["avg_bits"]], [100 * s["qat_acc"]], "g^", ms=9, label="mixed precision (retrained)")
        ax.axhline(100 * metrics["float_acc"], color="gray", ls=":", label="float")
        ax.set(xlabel="average bits (Eq. 4)", ylabel="test accuracy %", title="Accuracy vs average bits")
        ax.legend(fontsize=8)

    return draw


def _barrier_plot(result: Mapping[str, Any]) -> Callable[[Any], None]:
    recs = result["history"]["records"]

    def draw(ax: Any) -> None:
        ep = [r["epoch"] for r in recs]
        ax.plot(ep, [r["expected_bits"] for r in recs], "o-", label="E(SN) avg bits")
        ax.plot(ep, [r["sampled_bits"] for r in recs], "s--", label="sampled config avg bits")
        ax.axhline(result["b_max"], color="red", ls=":", label=f"b_max {result['b_max']:g}")
        ax.set(xlabel="epoch", ylabel="avg bits", title="Expected BOPs and the barrier")
        ax2 = ax.twinx()
        ax2.plot(ep, [r["barrier"] for r in recs], color="gray", alpha=0.6, label="barrier penalty")
        ax2.set_ylabel("barrier penalty")
        ax.legend(fontsize=8, loc="upper right")

    return draw


def _importance_plot(result: Mapping[str, Any]) -> Callable[[Any], None]:
    hist = result["history"]
    group = next(iter(hist["candidates"]))
    cands = hist["candidates"][group]
    rows = [r["probs"][group] for r in hist["records"] if group in r["probs"]]

    def draw(ax: Any) -> None:
        for j, (w, a) in enumerate(cands):
            ax.plot(range(len(rows)), [row[j] for row in rows], label=f"{w}/{a}")
        ax.set(xlabel="epoch", ylabel="p_ij", title=f"Importance factors of {group}", ylim=(0, 1))
        ax.legend(fontsize=7, ncol=4)

    return draw


def _latency_plot(rows: list[Mapping[str, Any]]) -> Callable[[Any], None]:
    ok = [r for r in rows if r.get("p50_ms") is not None]

    def draw(ax: Any) -> None:
        x = range(len(ok))
        ax.bar([i - 0.2 for i in x], [r["p50_ms"] for r in ok], 0.4, label="p50")
        ax.bar([i + 0.2 for i in x], [r["p99_ms"] for r in ok], 0.4, label="p99")
        ax.set_xticks(list(x), [r["target"] for r in ok])
        ax.set(ylabel="ms per call (batch 1)", title="Latency per target")
        ax.legend(fontsize=8)

    return draw


# -- gathering and writing -----------------------------------------------------------------------------------
def _find_bundle(source: Path) -> Path | None:
    if (source / "manifest.json").is_file():
        return source
    found = sorted(source.glob("*.bpnas"))
    return found[0] if found else None


def _bench_rows(source: Path, bundle: Path | None) -> list[Mapping[str, Any]] | None:
    for place in (source, bundle):
        data = _read_json(place / "bench.json") if place is not None else None
        if data is not None:
            return list(data["rows"])
    if bundle is None:
        return None
    from sdk.bench import bench

    return [vars(r) for r in bench(bundle, runs=20, warmup=3).rows]


def _precision_table(manifest: Any) -> str:
    if not manifest.effective_precision:
        return '<p class="missing">not recorded (exported with --no-inspect).</p>'
    targets = list(manifest.effective_precision)
    head = "".join(f"<th>{html.escape(t)}</th>" for t in targets)
    rows = []
    for layer, (w, a) in manifest.config.items():
        cells = []
        for t in targets:
            p = next((p for p in manifest.effective_precision[t].layers if p.layer == layer), None)
            text = "-" if p is None else f"{p.kernel} / {p.precision}"
            cls = ' class="up"' if p is not None and p.upcast else ""
            cells.append(f"<td{cls}>{html.escape(text)}{' UPCAST' if cls else ''}</td>")
        rows.append(f"<tr><td>{html.escape(layer)}</td><td>{w}/{a}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>layer</th><th>searched W/A</th>{head}</tr>{''.join(rows)}</table>"


def _artifact_table(manifest: Any) -> str:
    """One row per artifact file: format, bytes as the manifest records them, the targets it serves."""
    rows = [
        {"artifact": file, "format": entry.format, "bytes": f"{entry.bytes:,}",
         "targets": ", ".join(sorted(t for t, f in manifest.targets.items() if f == file))}
        for file, entry in manifest.artifacts.items()
    ]  # fmt: skip
    return _table(["artifact", "format", "bytes", "targets"], rows)


def _table(keys: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """An HTML table: one column per key, one row per mapping, cells escaped (floats to 3 decimals)."""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(k)))}</td>" for k in keys) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(source: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``out_dir/index.html`` (+ its PNGs) for a run folder or a bundle; returns the page's path."""
    from sdk.outputs import dir_out, write_atomic, write_text_atomic

    src = Path(source)
    if not src.is_dir():
        raise InputError(f"{os.fspath(src)!r} is neither a search run folder nor a .bpnas bundle.")
    bundle = _find_bundle(src)
    result = _read_json(src / "result.json")
    metrics = _read_json(src / "metrics.json")
    if bundle is None and result is None:
        raise InputError(
            f"{os.fspath(src)!r} holds no result.json (bpnas search output) and no bundle; pass a run "
            "folder or a bundle."
        )
    manifest = None
    if bundle is not None:
        from runtimes.bundle import read_manifest

        manifest = read_manifest(bundle)
    layers = manifest.config if manifest is not None else result["config"]["layers"]
    bench_rows = _bench_rows(src, bundle)
    latency = _latency_plot(bench_rows) if bench_rows else None
    figures: list[tuple[str, str, Callable[[Any], None] | None, str]] = [
        ("bits.png", "Per-layer bit allocation", _bits_plot(dict(layers)), ""),
        (
            "accuracy.png",
            "Accuracy vs average bits",
            metrics and _accuracy_plot(metrics),
            "needs RUN/metrics.json",
        ),
        ("barrier.png", "Barrier and E(SN)", result and _barrier_plot(result), "needs a search result.json"),
        (
            "importance.png",
            "Importance evolution",
            result and _importance_plot(result),
            "needs a search result.json",
        ),
        ("latency.png", "Latency per target", latency, "needs a bundle"),
    ]
    out = dir_out(out_dir)
    parts = [f"<h1>bpnas report: {html.escape(src.name)}</h1>"]
    for file, title, draw, missing in figures:
        parts.append(f"<h2>{title}</h2>")
        if not draw:
            parts.append(f'<p class="missing">not available: {missing}.</p>')
            continue
        png = _png(draw)
        write_atomic(out / file, partial(Path.write_bytes, data=png))
        data = base64.b64encode(png).decode()
        parts.append(f'<img alt="{title}" src="data:image/png;base64,{data}">')
    parts.append(_certificate_table(result))
    parts.append("<h2>Effective precision per engine</h2>")
    parts.append(
        _precision_table(manifest) if manifest is not None else '<p class="missing">needs a bundle.</p>'
    )
    if manifest is not None:
        parts.append(f"<h2>Artifacts</h2>{_artifact_table(manifest)}")
    if bench_rows:
        keys = ["target", "status", "size_kb", "searched_bits", "deployed_bits", "upcast_layers", "accuracy",
                "agreement", "p50_ms", "p99_ms", "fps"]  # fmt: skip
        parts.append(f"<h2>Bench</h2>{_table(keys, bench_rows)}")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>bpnas report</title><style>{_CSS}</style>"
    )
    page += f"</head><body>{''.join(parts)}</body></html>\n"
    return write_text_atomic(out / "index.html", page)


def _certificate_table(result: Mapping[str, Any] | None) -> str:
    """The search's certificate: every active constraint (avg bits, weight KB, cycles) recounted."""
    checks = ((result or {}).get("certificate") or {}).get("constraints") or []
    if not checks:
        return '<h2>Budget certificate</h2><p class="missing">not available: needs a search result.json.</p>'
    keys = ["name", "value", "limit", "unit", "inside", "basis"]
    return f"<h2>Budget certificate</h2>{_table(keys, checks)}"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.3f}" if isinstance(v, float) else str(v)
