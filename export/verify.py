"""Load a freshly written bundle on every installed target it carries, the way users will, and record what
each engine runs per layer (issue #5's effective precision: "profile() and the manifest show it").

``sdk.export`` calls :func:`inspect_targets` on the complete bundle in its temp directory, before the rename,
so a bundle an installed engine cannot load or run is never put in place, and the manifest records each
engine's per-layer kernel and precision, with the layers it silently runs wider than deployed.
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from export.manifest import versions
from runtimes.bundle import PrecisionRecord
from sdk.errors import BpnasError, BundleError

__all__ = ["inspect_targets", "host_description"]


#: the distribution whose version names each engine (an engine absent here is named after itself)
def host_description() -> str:
    """``x86_64 Intel(R) Xeon(R) ...``: the machine an effective-precision record was measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()} {model or platform.processor()}".strip()


def inspect_targets(
    bundle: Path, names: Iterable[str], example: np.ndarray, *, final_name: str | None = None
) -> dict[str, PrecisionRecord]:
    """Load ``bundle`` on each of ``names`` whose engine is installed (one thread), run ``example`` and read
    back the effective precision; raises BundleError when an installed engine cannot load or run it
    (``final_name``: the bundle's name once in place, for messages about a bundle still in its temp dir)."""
    import targets
    from sdk.predictor import load

    installed = set(targets.available())
    host, found = host_description(), versions()
    records = {}
    for name in names:
        target = targets.get(name)
        if target.name not in installed:
            continue
        with warnings.catch_warnings(record=True) as caught:  # recorded as notes; the loads users make warn
            warnings.simplefilter("always")
            try:
                with load(bundle, target=target.name, threads=1) as p:
                    out = p.predict(example)
                    layers = p.effective_precision()
            except BpnasError as e:
                why = str(e).replace(bundle.name, final_name) if final_name else str(e)
                raise BundleError(
                    f"installed target {target.name!r} cannot run this bundle, so it was not written: {why} "
                    f"Export without {target.name!r}, or pass inspect=False to write it unchecked."
                ) from e
        if not np.isfinite(out).all():
            raise BundleError(
                f"target {target.name!r} returned non-finite logits for the example input; the artifact "
                "is not usable there. Check the model's calibration (sdk.calibration) and re-export."
            )
        dist = target.distribution
        records[target.name] = PrecisionRecord(
            host=host,
            engine=f"{dist} {found.get(dist, 'unknown')}",
            layers=tuple(layers),
            notes=tuple(dict.fromkeys(str(w.message) for w in caught)),
        )
    return records
