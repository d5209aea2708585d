import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtimes.integer.packing import pack_codes, unpack_codes
from sdk.errors import BundleError


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 8), n=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_pack_unpack_round_trips_bit_exactly(bits: int, n: int, seed: int) -> None:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    codes = np.random.default_rng(seed).integers(lo, hi + 1, size=n)
    codes[0] = lo if seed % 2 else hi  # the range ends
    packed = pack_codes(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == (n * bits + 7) // 8
    assert np.array_equal(unpack_codes(packed, bits, (n,)), codes)


def test_out_of_range_codes_and_short_data_are_refused():
    with pytest.raises(ValueError, match="outside the 3-bit range"):
        pack_codes(np.array([4]), 3)
    with pytest.raises(BundleError, match="want 2"):
        unpack_codes(np.zeros(1, np.uint8), 3, (5,))
