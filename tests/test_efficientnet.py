"""EfficientNet-Lite0: TF-SAME geometry, strict load of the packaged weights, an ImageNet sanity check."""
import math

import pytest
import skimage.data
import torch
import torch.nn.functional as F

from macm_core.model.efficientnet_lite import (
    Conv2dSame,
    EfficientNetLite0,
    efficientnet_lite0_weights_path,
    load_efficientnet_lite0,
)

EGYPTIAN_CAT, CAT_CLASSES = 285, range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def weights():
    try:
        return efficientnet_lite0_weights_path()
    except FileNotFoundError as err:
        pytest.skip(f"efficientnet-lite0 asset missing (run `macm data fetch`): {err}")


def test_same_padding_matches_tensorflow_output_sizes():
    for size in (7, 8, 33, 100):
        for kernel, stride in ((3, 1), (3, 2), (5, 2)):
            conv = Conv2dSame(1, 1, kernel, stride=stride, bias=False)
            assert conv(torch.zeros(1, 1, size, size + 1)).shape[-2:] == (
                math.ceil(size / stride), math.ceil((size + 1) / stride))
    # 4 -> 2 with k=3, s=2 pads one pixel, at the bottom/right only (torch padding=1 pads both
    # sides and would centre the first window on pixel 0 instead of pixel 1)
    conv = Conv2dSame(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # centre tap
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert torch.equal(conv(x)[0, 0], x[0, 0, 1::2, 1::2])


def test_feature_map_is_stride_32():
    net = EfficientNetLite0().eval()
    with torch.no_grad():
        assert net.features(torch.zeros(2, 3, 100, 130)).shape == (2, 1280, 4, 5)


def test_strict_load_of_packaged_weights(weights):
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net = load_efficientnet_lite0()
    assert not net.training
    assert set(net.state_dict()) == set(state)
    assert sum(p.numel() for p in net.parameters()) == 4_652_008
    assert torch.equal(net._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])


def test_cat_photo_is_a_cat(weights):
    image = torch.from_numpy(skimage.data.chelsea()).permute(2, 0, 1)[None].float() / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        probs = load_efficientnet_lite0()(image * 2 - 1).softmax(-1)[0]
    top = probs.topk(3)
    assert top.indices[0].item() == EGYPTIAN_CAT and top.values[0] > 0.5, (top.indices, top.values)
    assert all(i in CAT_CLASSES for i in top.indices.tolist())


def test_missing_weights_say_how_to_fetch(tmp_cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="macm data fetch"):
        efficientnet_lite0_weights_path()
    with pytest.raises(FileNotFoundError, match="macm data fetch"):
        load_efficientnet_lite0(tmp_path / "nowhere.pth")
