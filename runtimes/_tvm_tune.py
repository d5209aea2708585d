"""MetaSchedule tuning for the TVM adapter, with a builder and runner that stay in this process.

TVM's stock LocalBuilder/LocalRunner start worker processes that each import TVM and its tensor intrinsics
(~25 s of CPU here), so on a small or busy machine every candidate hits the 30 s build timeout and tuning
records nothing. Building with the LLVM codegen and timing with ``time_evaluator`` in-process avoids that
start-up cost. The price: a candidate that crashes takes the calling process with it (none did here).
Only ``runtimes/_tvm_*.py`` and ``runtimes/tvm.py`` import TVM, and only inside functions.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["tune_module", "open_database", "WORKLOAD_FILE", "RECORD_FILE"]

WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"

_log = logging.getLogger(__name__)


def open_database(records_dir: Path) -> Any:
    """The MetaSchedule JSON database in ``records_dir`` (created empty when missing)."""
    from tvm.s_tir import meta_schedule as ms

    records_dir.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(
        path_workload=str(records_dir / WORKLOAD_FILE),
        path_tuning_record=str(records_dir / RECORD_FILE),
        allow_missing=True,
    )


def _in_process_builder_runner(number: int, repeat: int, min_repeat_ms: int) -> tuple[Any, Any]:
    """A (builder, runner) pair that compiles and times candidates in this process, kept in memory."""
    import tvm
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build
    from tvm.s_tir.meta_schedule.runner import PyRunner
    from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common, run_evaluator_common

    random_fill = tvm.get_global_func("tvm.contrib.random.random_fill_for_measure", allow_missing=True)
    built: dict[str, Any] = {}  # fake artifact path -> runtime module, dropped once run

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for bi in build_inputs:
                try:
                    rt_mod = default_build(bi.mod, bi.target, None)
                except Exception as e:  # a bad candidate is recorded as a build error, not raised
                    results.append(BuilderResult(None, f"in-process build failed: {e}"))
                    continue
                # MetaSchedule's RemoveBuildArtifact callback deletes the artifact's directory afterwards
                key = str(Path(tempfile.mkdtemp(prefix="bpnas_tvm_")) / "in_memory")
                built[key] = rt_mod
                results.append(BuilderResult(key, None))
            return results

    config = ms.runner.EvaluatorConfig(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms)

    @derived_object
    class InProcessRunner(PyRunner):
        def run(self, runner_inputs: list[Any]) -> list[Any]:
            futures = []
            for ri in runner_inputs:
                rt_mod = built.pop(str(ri.artifact_path), None)
                if rt_mod is None:
                    futures.append(LocalRunnerFuture(None, "artifact not built in this process"))
                    continue
                try:
                    dev = tvm.runtime.device(str(ri.device_type), 0)
                    args_info = tuple(a.as_json() for a in ri.args_info)
                    args = alloc_argument_common(random_fill, dev, args_info, 1)
                    costs = run_evaluator_common(rt_mod, dev, config, args)
                    # MetaSchedule ranks by the mean; the fastest repeat is the one no other process
                    # preempted, so a busy machine does not misjudge a good candidate.
                    futures.append(LocalRunnerFuture(res=[min(costs)], error_message=None))
                except Exception as e:
                    futures.append(LocalRunnerFuture(None, f"in-process run failed: {e}"))
            return futures

    return InProcessBuilder(), InProcessRunner()


def tune_module(
    mod: Any,
    target: Any,
    records_dir: Path,
    logs_dir: Path,
    *,
    trials: int,
    trials_per_task: int | None,
    seed: int = 0,
    number: int = 3,
    repeat: int = 5,
    min_repeat_ms: int = 20,
) -> dict[str, Any]:
    """Tune every fused TIR task of a legalized, fused Relax module; append records to ``records_dir``.

    Returns counts (tasks, trials requested, records in the database) and the wall time.
    """
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks, extracted_tasks_to_tune_contexts

    t0 = time.perf_counter()
    tasks = extract_tasks(mod, target)
    if not tasks:
        return {"tasks": 0, "trials_per_task": 0, "records_added": 0, "records_total": 0, "wall_s": 0.0}
    per_task = trials_per_task or max(1, -(-trials // len(tasks)))
    # A smaller population than MetaSchedule's 512 keeps the search cost per round in proportion to a small
    # trial budget (each round otherwise spends ~1 min sampling and evolving on a 2-core machine).
    strategy = ms.search_strategy.EvolutionarySearch(
        population_size=min(512, max(64, 16 * per_task)),
        genetic_num_iters=2 if per_task < 32 else 4,
        init_min_unmeasured=min(50, max(16, 4 * per_task)),
    )
    contexts, weights = extracted_tasks_to_tune_contexts(
        tasks, work_dir=str(logs_dir), strategy=strategy, num_threads=_num_cores(target), seed=seed
    )
    database = open_database(records_dir)
    before = len(database)
    builder, runner = _in_process_builder_runner(number, repeat, min_repeat_ms)
    try:
        import xgboost  # noqa: F401

        cost_model: Any = "xgb"
    except ImportError:  # xgboost is optional; a random model still searches, just less efficiently
        _log.warning("xgboost is not installed: MetaSchedule uses a random cost model (pip install xgboost)")
        cost_model = "random"
    ms.tune_tasks(
        tasks=contexts,
        task_weights=weights,
        work_dir=str(logs_dir),
        max_trials_global=trials,
        max_trials_per_task=per_task,
        num_trials_per_iter=min(per_task, 16),
        builder=builder,
        runner=runner,
        database=database,
        cost_model=cost_model,
        task_scheduler="round-robin",
    )
    return {
        "tasks": len(contexts),
        "trials_per_task": per_task,
        "records_added": len(database) - before,
        "records_total": len(database),
        "wall_s": time.perf_counter() - t0,
        "task_names": [c.task_name for c in contexts],
    }


def _num_cores(target: Any) -> int:
    cores = target.attrs.get("num-cores") if hasattr(target, "attrs") else None
    return int(cores) if cores else 1
