import pytest
import torch

from simple_cnn.errors import ConfigError
from simple_cnn.models import ModelConfig, SimpleCNN


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu"])
def test_every_norm_and_activation_builds_and_runs(norm, activation):
    config = ModelConfig.from_params({"norm": norm, "activation": activation, "base_width": 8,
                                      "num_groups": 4}, num_classes=10, image_size=32)
    model = SimpleCNN(config)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    block = model.features[0]
    expected = {"batch": torch.nn.BatchNorm2d, "group": torch.nn.GroupNorm,
                "layer": torch.nn.GroupNorm, "none": torch.nn.Identity}[norm]
    assert isinstance(block.norm, expected)
    if norm == "layer":
        assert block.norm.num_groups == 1


def test_widths_double_and_grayscale_input():
    config = ModelConfig.from_params({"in_channels": 1, "kernel_size": 5}, image_size=32)
    model = SimpleCNN(config)
    assert [block.conv.out_channels for block in model.features] == [16, 32, 64]
    assert model.features[0].conv.padding == (2, 2)
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, 10)


def test_leaky_relu_uses_the_configured_slope():
    model = SimpleCNN(ModelConfig.from_params({"activation": "leaky_relu", "negative_slope": 0.1}))
    assert model.features[0].act.negative_slope == 0.1


@pytest.mark.parametrize("params, message", [
    ({"norm": "instance"}, "cnn.model.norm='instance' is not allowed; choose one of: batch, group, layer, none"),
    ({"activation": "tanh"}, "cnn.model.activation='tanh' .* relu, leaky_relu, gelu"),
    ({"norm": "group", "num_groups": 5}, "num_groups=5 does not divide"),
    ({"kernel_size": 4}, "kernel_size=4 must be odd"),
    ({"in_channels": 2}, "in_channels must be 1 .* or 3"),
    ({"widht": 3}, "unknown key"),
])
def test_bad_model_params_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_params(params)
