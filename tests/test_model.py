import pytest
import torch

from simple_cnn.errors import ConfigError
from simple_cnn.models.config import ModelConfig
from simple_cnn.models.simple_cnn import SimpleCNN, make_norm
from simple_cnn.parameters import CnnParams
from simple_cnn.params import build


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu"])
def test_every_norm_and_activation_builds_and_runs(norm, activation):
    config = ModelConfig(norm=norm, activation=activation, base_width=8, num_groups=4, num_classes=10,
                         image_size=32)
    model = SimpleCNN(config)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    block = model.features[0]
    expected = {"batch": torch.nn.BatchNorm2d, "group": torch.nn.GroupNorm,
                "layer": torch.nn.GroupNorm, "none": torch.nn.Identity}[norm]
    assert isinstance(block.norm, expected)
    if norm == "layer":
        assert block.norm.num_groups == 1


def test_widths_double_and_grayscale_input():
    config = ModelConfig(in_channels=1, kernel_size=5, image_size=32)
    model = SimpleCNN(config)
    assert [block.conv.out_channels for block in model.features] == [16, 32, 64]
    assert model.features[0].conv.padding == (2, 2)
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)


def test_leaky_relu_uses_the_configured_slope():
    model = SimpleCNN(ModelConfig(activation="leaky_relu", negative_slope=0.1))
    assert model.features[0].act.negative_slope == 0.1


@pytest.mark.parametrize("params, message", [
    ({"norm": "instance"}, "cnn.model.norm='instance' is not allowed; choose one of: batch, group, layer, none"),
    ({"activation": "tanh"}, "cnn.model.activation='tanh' .* relu, leaky_relu, gelu"),
    ({"norm": "group", "num_groups": 5}, r"cnn.model.num_groups=5 does not divide the channel counts \[16, 32, 64\]"),
    ({"kernel_size": 4}, "cnn.model.kernel_size=4: must be odd"),
    ({"in_channels": 2}, "cnn.model.in_channels=2 .* choose one of: 1, 3"),
    ({"widht": 3}, "cnn.model.widht is not a known key .* base_width"),
    ({"dropout": True}, "cnn.model.dropout=True: must be a number"),
])
def test_bad_model_params_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        CnnParams.model_validate({"model": params})


def test_pooling_below_one_pixel_is_refused_once_the_image_size_is_known():
    with pytest.raises(ConfigError, match="cnn.model.num_blocks=4 pools a 8px image below 1 pixel"):
        build(ModelConfig, "cnn.model", num_blocks=4, image_size=8)


def test_an_unknown_norm_is_refused_not_silently_identity():
    with pytest.raises(ValueError, match="Unknown norm 'instance'"):
        make_norm("instance", 8, 4)
