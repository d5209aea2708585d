"""Graph lowering passes: each ``apply(model) -> (model, changed)``, one per file, run to a fixed point.

Each pass file registers the names targets list (``export.passes.registry``); helpers several passes share
live in ``export.passes._util``. Torch-free: they work on ``onnx.ModelProto`` only, so they can be tested on
hand-built graphs.
"""

from export.passes.base import Pass, PassesDidNotConverge, run_passes
from export.passes.code_arithmetic import CodeArithmetic
from export.passes.constants import ConstantsToInitializers
from export.passes.containers import ActivationContainers
from export.passes.dedupe import DedupeQuantizers
from export.passes.drop_full_range_clip import DropFullRangeClip
from export.passes.float_clip import FloatClip
from export.passes.fold_activation import FoldActivationIntoQuantize
from export.passes.integer_ops import IntegerOps
from export.passes.io_contract import IoContract
from export.passes.merge_clips import MergeClips
from export.passes.name_layers import NameLayers
from export.passes.per_tensor import PerTensorWeights
from export.passes.power_of_two import PowerOfTwoCheck
from export.passes.prune import Prune
from export.passes.quantize_before_maxpool import QuantizeBeforeMaxPool
from export.passes.registry import PassSpec, check_lowering, pass_names, register_pass
from export.passes.remove_identity import RemoveIdentity
from export.passes.residual_rounding import KeepResidualRounding
from export.passes.split_add import SplitAddPerQuantizer
from export.passes.split_pool import SplitConvPerQuantizer, SplitMaxPoolPerQuantizer
from export.passes.strided_pointwise import SliceStridedPointwise

__all__ = [
    "ActivationContainers",
    "CodeArithmetic",
    "ConstantsToInitializers",
    "DedupeQuantizers",
    "DropFullRangeClip",
    "FloatClip",
    "FoldActivationIntoQuantize",
    "IntegerOps",
    "IoContract",
    "KeepResidualRounding",
    "MergeClips",
    "NameLayers",
    "Pass",
    "PassSpec",
    "PassesDidNotConverge",
    "PerTensorWeights",
    "PowerOfTwoCheck",
    "Prune",
    "QuantizeBeforeMaxPool",
    "RemoveIdentity",
    "SliceStridedPointwise",
    "SplitAddPerQuantizer",
    "SplitConvPerQuantizer",
    "SplitMaxPoolPerQuantizer",
    "check_lowering",
    "pass_names",
    "register_pass",
    "run_passes",
]
