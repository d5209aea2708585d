from export.passes import DropFullRangeClip
from tests.export._graphs import INT8, UINT8, Builder, ops


def test_full_container_clip_dropped_narrow_clip_kept():
    b = Builder()
    t = b.qcdq("x", 0.1, UINT8, 0, 255)  # 8-bit unsigned: the clip is the container's range
    t = b.qcdq(t, 0.1, INT8, -127, 127)  # signed narrow range: kept
    b.qcdq(t, 0.1, UINT8, 0, 15, out="y")  # 4-bit: kept
    out, changed = DropFullRangeClip().apply(b.model())
    assert changed and ops(out).count("Clip") == 2
    assert DropFullRangeClip().apply(out)[1] is False
