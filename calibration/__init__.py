"""bpnas calibration: BN folding, activation observers, post-training calibration and the PTQ workflow.

qmodel = calibration.calibrate(sdk.quantize(model, cfg), calib_loader, method="percentile")
qmodel = calibration.ptq(model, cfg, calib_loader)            # the same, from the float model
"""

from calibration.bn_fold import ConvBN, QuantTracer, find_conv_bn, fold_bn, fold_conv_bn, has_foldable_bn
from calibration.calibrate import calibrate, round_scales_to_power_of_two_
from calibration.observers import (
    CALIBRATORS,
    EntropyObserver,
    MinMaxObserver,
    MSEObserver,
    Observer,
    ObserverFactory,
    PercentileObserver,
    create_observer,
    register_calibrator,
)
from calibration.ptq import ptq
from calibration.qat_fold import FoldedConvBN
from calibration.reshaping import (
    RESHAPE_K,
    clipped_fraction,
    reshape_alpha,
    reshape_threshold,
    reshape_weights_,
    reshaped,
)
from calibration.weights import WEIGHT_METHODS, calibrate_weights_, register_weight_method, weight_alpha

__all__ = [
    "CALIBRATORS",
    "RESHAPE_K",
    "WEIGHT_METHODS",
    "ConvBN",
    "EntropyObserver",
    "FoldedConvBN",
    "MSEObserver",
    "MinMaxObserver",
    "Observer",
    "ObserverFactory",
    "PercentileObserver",
    "QuantTracer",
    "calibrate",
    "calibrate_weights_",
    "clipped_fraction",
    "create_observer",
    "find_conv_bn",
    "fold_bn",
    "fold_conv_bn",
    "has_foldable_bn",
    "ptq",
    "register_calibrator",
    "register_weight_method",
    "reshape_alpha",
    "reshape_threshold",
    "reshape_weights_",
    "reshaped",
    "round_scales_to_power_of_two_",
    "weight_alpha",
]
