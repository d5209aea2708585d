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
