"""sdk.nas: BP-NAS mixed-precision search (Sect. 3.2, Algorithm 1), retraining, baselines (uniform QAT, DNAS,
greedy, measured-sensitivity knapsack) and the search CLI.

result = sdk.search(model, train_loader, val_loader, b_max=3.0)   # result.config fits b_max, always
result = sdk.search(..., budget={"weight_kb": 64, "cycles": 2e6}, target="integer")  # each limit guaranteed
qmodel = sdk.retrain(model, result.config, train_loader, val_loader, epochs=30)
"""

from sdk.nas.api import search
from sdk.nas.baselines import LambdaSweep, dnas_search, lambda_sweep, uniform_qat
from sdk.nas.certificate import Certificate, Check
from sdk.nas.command import run_search_command
from sdk.nas.constraints import BopsBudget, Cycles, WeightBytes
from sdk.nas.fill import FillMove
from sdk.nas.heuristics import HeuristicResult, greedy_config, sensitivity_config
from sdk.nas.history import EpochRecord, SearchHistory
from sdk.nas.qat import retrain
from sdk.nas.result import SearchResult
from sdk.nas.sampling import RepairMove
from sdk.nas.schedule import MuSchedule
from sdk.nas.space import PAPER_CANDIDATES

__all__ = [
    "PAPER_CANDIDATES",
    "BopsBudget",
    "Certificate",
    "Check",
    "Cycles",
    "EpochRecord",
    "FillMove",
    "HeuristicResult",
    "LambdaSweep",
    "MuSchedule",
    "RepairMove",
    "SearchHistory",
    "SearchResult",
    "WeightBytes",
    "dnas_search",
    "greedy_config",
    "lambda_sweep",
    "retrain",
    "run_search_command",
    "search",
    "sensitivity_config",
    "uniform_qat",
]
