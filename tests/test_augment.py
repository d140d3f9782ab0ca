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


def coordinates(n: int, size: int = 32) -> torch.Tensor:
    """Images whose channel 0 is each pixel's column and channel 1 its row, scaled to [0, 1]:
    an output pixel's values say where in the input it was sampled."""
    ramp = torch.linspace(0, 1, size)
    return torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size)]).expand(
        n, 2, size, size).contiguous()


def test_resized_crops_stay_inside_the_image_vary_in_shape_and_centre_and_flip_half():
    from simple_cnn.augment import random_resized_crop_flip

    torch.manual_seed(0)
    out = random_resized_crop_flip(coordinates(512), scale=(0.3, 1.0))
    first, last = out[:, 0, :, 0].mean(1), out[:, 0, :, -1].mean(1)
    top, bottom = out[:, 1, 0, :].mean(1), out[:, 1, -1, :].mean(1)
    width, height = (last - first).abs(), bottom - top
    # inside the image: at most the edge half-pixel is clamped, never two neighbours
    x, y = out[:, 0], out[:, 1]
    assert (x[:, :, 1] != x[:, :, 0]).all() and (x[:, :, -1] != x[:, :, -2]).all()
    assert (y[:, 1] != y[:, 0]).all() and (y[:, -1] != y[:, -2]).all()
    assert (height > 0).all() and (width > 0).all()
    area = width * height
    assert area.max() <= 1.0 + 1e-5 and area.min() >= 0.3 * 0.9  # scale, less clipping
    assert (width > height * 1.05).any() and (height > width * 1.05).any()  # aspects both ways
    assert ((width / height) < 4 / 3 * 1.1).all() and ((height / width) < 4 / 3 * 1.1).all()
    centre_x, centre_y = (first + last) / 2, (top + bottom) / 2
    for centre in (centre_x, centre_y):  # spread around the middle, to both sides
        assert abs(centre.mean() - 0.5) < 0.03 and (centre < 0.45).any() and (centre > 0.55).any()
    flipped = (first > last).float().mean()
    assert 0.4 < flipped < 0.6


def test_crop_and_flip_mirror_about_half_the_images_and_shift_up_to_the_padding():
    torch.manual_seed(0)
    images = coordinates(512, size=16)
    mirrored = (random_crop_flip(images, padding=0) != images).any(3).any(2).any(1).float().mean()
    assert 0.4 < mirrored < 0.6
    out = random_crop_flip(images, padding=4, flip=False)
    step = 1 / 15
    # the centre pixel's source, in pixels: every shift from -4 to 4, on both axes
    shift_x = torch.round((out[:, 0, 8, 8] - images[0, 0, 8, 8]) / step).long()
    shift_y = torch.round((out[:, 1, 8, 8] - images[0, 1, 8, 8]) / step).long()
    assert set(shift_x.tolist()) == set(shift_y.tolist()) == set(range(-4, 5))


def test_the_standard_preset_crops_with_4_pixels_of_padding():
    torch.manual_seed(0)
    augment = BatchAugment("standard", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], num_classes=10)
    images = torch.zeros(256, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 16, 16] = 255  # one bright pixel: where it lands is the shift
    out, _ = augment(images, torch.zeros(256, dtype=torch.long))
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 32, where % 32
    assert set((rows - 16).tolist()) == set(range(-4, 5))
    assert {abs(c - 16) if c >= 16 else abs(c - 15) for c in cols.tolist()} <= set(range(0, 5))


def test_augmentation_keeps_the_device_and_dtype_of_its_input():
    from simple_cnn.augment import random_resized_crop_flip

    meta = torch.empty(4, 3, 8, 8, device="meta")  # every tensor made inside must follow
    assert random_crop_flip(meta, padding=2).device.type == "meta"
    assert random_resized_crop_flip(meta).device.type == "meta"
    assert random_resized_crop_flip(meta, flip=False).device.type == "meta"
    assert random_resized_crop_flip(torch.rand(2, 3, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_auto_logs_what_it_chose(caplog):
    with caplog.at_level("INFO", logger="simple_cnn.augment"):
        resolve_preset("auto", 5_000)
    assert [r.getMessage() for r in caplog.records] == [
        "Augmentation preset 'auto' chose 'heavy' for 5000 training images."]


def test_each_preset_is_made_of_what_the_readme_lists():
    def parts(preset: str) -> BatchAugment:
        return BatchAugment(preset, [0.5] * 3, [0.25] * 3, num_classes=7)

    presets = ("none", "standard", "seed", "medium", "heavy")
    assert [parts(p).preset for p in presets] == list(presets)  # the run signature records it
    assert [parts(p).crop_flip for p in presets] == [False, True, False, True, True]
    assert [parts(p).soft_labels for p in presets] == [False, False, False, False, True]
    for plain in ("none", "standard"):
        assert parts(plain).before_normalize is None and parts(plain).after_normalize is None
    crop, jitter, blur = parts("seed").before_normalize
    assert crop.scale == (0.8, 1.0) and parts("seed").after_normalize is None
    assert (jitter.p, str(jitter._param_generator)) == (1.0, "brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0")
    assert jitter._fixed_order == (0, 1)  # a fixed order: kornia's path that reads nothing on the host
    assert (blur.p, blur.sigma) == (0.3, (0.1, 2.0))
    for preset in ("medium", "heavy"):
        rotation, erasing = parts(preset).before_normalize, parts(preset).after_normalize
        assert rotation.degrees == (-10.0, 10.0)  # every image, nearest (see the rotation tests)
        assert (erasing.p, erasing.scale, erasing.ratio, erasing.value) == (0.5, (0.02, 0.2), (0.3, 3.3), 0.0)
    cutmix, mixup = parts("heavy").batch_mix.transforms
    assert (type(cutmix).__name__, cutmix.num_classes, type(mixup).__name__, mixup.num_classes) == (
        "CutMix", 7, "MixUp", 7)
    for unresolved in ("auto", "strong"):
        with pytest.raises(ConfigError, match=f"BatchAugment needs a resolved preset, got '{unresolved}'"):
            parts(unresolved)


def test_the_random_blur_is_a_gaussian_blur_per_image_and_leaves_the_others_alone():
    """Each image blurred (probability p) equals kornia's gaussian_blur2d with that image's
    sigma and reflected borders; the images not drawn are returned unchanged."""
    import kornia

    from simple_cnn.augment import RandomBlur

    images = torch.rand(6, 3, 9, 9)
    torch.manual_seed(3)
    blurred = RandomBlur(sigma=(0.5, 1.5), p=0.5)(images)
    torch.manual_seed(3)  # the same draws: sigma per image, then which images
    sigma = torch.empty(6, 1).uniform_(0.5, 1.5)
    chosen = torch.rand(6, 1, 1) < 0.5
    assert 0 < int(chosen.sum()) < 6
    for i in range(6):
        if chosen[i]:
            reference = kornia.filters.gaussian_blur2d(images[i:i + 1], (3, 3), sigma[i].repeat(1, 2),
                                                       border_type="reflect")
            torch.testing.assert_close(blurred[i:i + 1], reference, atol=1e-5, rtol=1e-5)
        else:
            torch.testing.assert_close(blurred[i], images[i])


@pytest.mark.parametrize("shape", [(32, 32), (24, 40)])
def test_rotation_is_torchvisions_rotate_per_image(shape):
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from simple_cnn.augment import rotate

    images = torch.rand(5, 3, *shape, generator=torch.Generator().manual_seed(0))
    angles = torch.tensor([0.0, 7.0, -10.0, 30.0, 90.0])
    expected = torch.stack([TF.rotate(image, float(angle), interpolation=InterpolationMode.NEAREST)
                            for image, angle in zip(images, angles)])
    assert torch.equal(rotate(images, angles), expected)


def test_the_rotation_preset_draws_an_angle_per_image_within_its_range():
    from simple_cnn.augment import RandomRotate

    torch.manual_seed(0)
    pixel = torch.zeros(200, 1, 33, 33)
    pixel[:, :, 16, 28] = 1.0  # 12 px right of the centre
    moved = RandomRotate((-10.0, 10.0))(pixel)
    y, x = (moved[:, 0] == 1.0).nonzero()[:, 1:].float().T
    angle = torch.rad2deg(torch.atan2(16 - y, x - 16))  # counter-clockwise, y down
    assert angle.abs().max() <= 10.5 and angle.std() > 3  # per image, spread over the range


def test_erasing_sets_one_rectangle_of_the_stated_area_in_about_p_of_the_images():
    from simple_cnn.augment import RandomErase

    torch.manual_seed(0)
    out = RandomErase(scale=(0.02, 0.2), value=0.0, p=0.5)(torch.ones(2000, 3, 32, 32))
    erased = out[:, 0] == 0
    assert torch.equal(erased, (out == 0).all(1))  # every channel alike
    hit = erased.any(dim=(1, 2))
    assert 0.45 < hit.float().mean() < 0.55
    rows, cols = erased.any(2), erased.any(1)
    for image in torch.nonzero(hit)[:200, 0]:
        height, width = int(rows[image].sum()), int(cols[image].sum())
        assert int(erased[image].sum()) == height * width  # one filled rectangle
        assert 0.01 * 1024 <= height * width <= 0.22 * 1024
