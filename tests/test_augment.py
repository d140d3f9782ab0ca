import pytest
import torch

from simple_cnn.augment import BatchAugment, random_crop_flip, resolve_preset
from simple_cnn.errors import ConfigError


def test_crop_and_flip_draw_parameters_per_image():
    torch.manual_seed(0)
    image = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(1, 3, 8, 8)
    batch = image.repeat(64, 1, 1, 1)
    out = random_crop_flip(batch, padding=2)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 10  # one transform call on a batch, many different crops


def test_each_output_is_a_shifted_and_maybe_mirrored_window_of_the_padded_input():
    torch.manual_seed(1)
    image = torch.randint(1, 255, (1, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(image.repeat(32, 1, 1, 1), padding=2)
    padded = torch.nn.functional.pad(image[0], (2, 2, 2, 2))
    windows = [padded[:, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
    candidates = windows + [w.flip(-1) for w in windows]
    for o in out:
        assert any(torch.equal(o, c) for c in candidates)


def test_no_padding_no_flip_is_identity():
    x = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)


@pytest.mark.parametrize("preset", ["standard", "seed", "medium", "heavy"])
def test_presets_return_normalised_float_batches(preset):
    torch.manual_seed(0)
    mean, std = [0.2, 0.5, 0.7], [0.1, 0.25, 0.3]
    augment = BatchAugment(preset, mean, std, num_classes=10)
    # each channel one constant: normalised, it is (value - mean) / std wherever the image shows
    value = torch.tensor([51, 128, 230], dtype=torch.uint8)
    x = value[None, :, None, None].expand(8, 3, 32, 32).contiguous()
    y = torch.arange(8) % 10
    out, targets = augment(x, y)
    assert out.shape == (8, 3, 32, 32) and out.dtype == torch.float32
    expected = (value.float() / 255 - torch.tensor(mean)) / torch.tensor(std)
    blank = -torch.tensor(mean) / torch.tensor(std)  # padding and rotation fill black
    for c in range(3):
        channel = out[:, c]
        is_value = torch.isclose(channel, expected[c], atol=1e-5)
        is_blank = torch.isclose(channel, blank[c], atol=1e-5)
        is_blank |= channel == 0  # RandomErasing fills normalised zeros: the mean colour
        pixels = channel * std[c] + mean[c]  # back on the 0-1 scale: a valid pixel everywhere
        assert pixels.min() > -1e-5 and pixels.max() < 1 + 1e-5, preset
        if preset == "seed":  # jitter changes the value, but each image stays one constant
            assert channel.flatten(1).std(1).max() < 1e-4
        elif preset != "heavy":  # (heavy mixes images: MixUp blends the constant with blanks)
            assert (is_value | is_blank).all(), preset
            assert is_value.float().mean() > 0.7
    if preset == "heavy":
        assert targets.shape == (8, 10)
        torch.testing.assert_close(targets.sum(1), torch.ones(8))
    else:
        assert torch.equal(targets, y)


def test_eval_mode_only_normalises():
    augment = BatchAugment("medium", [0.5] * 3, [0.25] * 3, num_classes=10)
    x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out, _ = augment(x, torch.zeros(2, dtype=torch.long), train=False)
    torch.testing.assert_close(out, torch.full((2, 3, 4, 4), 2.0))


def test_auto_picks_by_training_set_size():
    assert resolve_preset("auto", 5_000) == "heavy"
    assert resolve_preset("auto", 45_000) == "medium"
    assert resolve_preset("auto", 200_000) == "standard"
    assert resolve_preset("seed", 10) == "seed"
    # the thresholds themselves: heavy below 10,000 images, medium below 100,000
    assert [resolve_preset("auto", n) for n in (9_999, 10_000, 99_999, 100_000)] == [
        "heavy", "medium", "medium", "standard"]


def test_unknown_preset_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="preset='strong' .* standard, seed, medium, heavy, auto"):
        resolve_preset("strong", 100)


def test_resized_crop_flip_draws_per_image_and_keeps_pixels_in_range():
    from simple_cnn.augment import random_resized_crop_flip

    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 32).expand(64, 3, 32, 32).contiguous()  # brighter to the right
    same = random_resized_crop_flip(ramp, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    rising = (same[:, 0, :, -1] > same[:, 0, :, 0]).all(1)
    assert 10 < rising.sum() < 54  # each image flipped or not on its own draw
    assert torch.allclose(same[rising], ramp[rising], atol=1e-5)  # full-size crop: the image itself
    assert torch.allclose(same[~rising], ramp[~rising].flip(-1), atol=1e-5)
    cropped = random_resized_crop_flip(ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0), flip=False)
    spans = cropped[:, 0, 0, -1] - cropped[:, 0, 0, 0]
    assert torch.allclose(spans, torch.full_like(spans, 0.5 * 31 / 32), atol=0.02)  # half the width
    assert spans.min() > 0 and cropped[:, 0, 0, 0].unique().numel() > 32  # offsets differ per image
    assert cropped.min() >= 0 and cropped.max() <= 1
