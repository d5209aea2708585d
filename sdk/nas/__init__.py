"""BP-NAS mixed-precision search (Sect. 3.2, Algorithm 1), retraining, baselines and the search CLI.

result = sdk.search(model, train_loader, val_loader, b_max=3.0)   # result.config fits b_max, always
qmodel = sdk.retrain(model, result.config, train_loader, val_loader, epochs=30)
"""

from sdk.search.api import search
from sdk.search.baselines import LambdaSweep, dnas_search, lambda_sweep, uniform_qat
from sdk.search.command import run_search_command
from sdk.search.history import EpochRecord, SearchHistory
from sdk.search.result import SearchResult
from sdk.search.retrain import retrain
from sdk.search.sampling import RepairMove
from sdk.search.schedule import MuSchedule
from sdk.search.space import PAPER_CANDIDATES

__all__ = [
    "PAPER_CANDIDATES",
    "EpochRecord",
    "LambdaSweep",
    "MuSchedule",
    "RepairMove",
    "SearchHistory",
    "SearchResult",
    "dnas_search",
    "lambda_sweep",
    "retrain",
    "run_search_command",
    "search",
    "uniform_qat",
]


def _bind_package_name_to_function() -> None:
    """API.md makes ``sdk.search`` the search *function*, and this package is also named ``sdk.search``.

    After this file runs, Python's import system sets ``sdk.search = sys.modules["sdk.search"]`` (the lazy
    loader in ``sdk/__init__.py`` would otherwise be shadowed by the package whenever a submodule such as
    ``sdk.search.api`` is imported first). So that entry becomes the function itself, carrying the
    package's ``__path__`` (submodule imports keep working) and its public names (``from sdk.search import
    retrain`` and ``from sdk.search import plots`` keep working).
    """
    import sys

    pkg = sys.modules[__name__]
    for name, value in vars(pkg).items():
        if name not in ("__name__", "__doc__", "__builtins__", "__qualname__") and not hasattr(search, name):
            setattr(search, name, value)
    for name in ("__path__", "__file__", "__spec__", "__package__", "__loader__", "__all__", "__name__"):
        setattr(search, name, getattr(pkg, name))  # __name__ too: `from sdk.search import plots` needs it
    sys.modules[__name__] = search  # type: ignore[assignment]


_bind_package_name_to_function()
