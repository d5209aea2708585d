from export.passes import NameLayers
from tests.export._graphs import UINT8, Builder


def test_conv_named_after_the_layer_owning_its_weight_codes():
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 255)
    b.qconv(x, "layer1.0.conv1", 4, 4, 0.05, out="y")
    model = b.model()
    model.graph.node[-1].name = "node_conv2d_7"
    out, changed = NameLayers(("layer1.0.conv1",)).apply(model)
    assert changed and out.graph.node[-1].name == "layer1.0.conv1"
    assert NameLayers(("layer1.0.conv1",)).apply(out)[1] is False
