"""`sdvicl-bench data prepare <dataset> <source>`: datasets published in another layout than
the loaders read, converted into theirs under `data.root`.

    sbd            SBD's ``dataset/cls/<id>.mat`` (MATLAB struct ``GTcls.Segmentation``, class
                   ids 0..20) -> ``<data.root>/VOC2012/SegmentationClassAug/<id>.png`` (8-bit
                   'L' label PNGs). As HSNet's SegmentationClassAug (DeepLab's "fusion": SBD's
                   masks, then VOC2012's own copied over them), VOC2012's
                   ``SegmentationClass/<id>.png`` palette masks, where
                   ``<data.root>/VOC2012/SegmentationClass/`` exists, are converted too (palette
                   index = class id, 255 = void border) and win where both exist: 11,355 SBD +
                   2,913 VOC = 12,031 masks.
    imagenet-val   ILSVRC2012 val as one flat folder of ``ILSVRC2012_val_*.JPEG`` plus its
                   labels -> ``<data.root>/imagenet/val/<wnid>/<file>`` (hard links when on the
                   same file system, else copies). Labels: the devkit's
                   ``ILSVRC2012_validation_ground_truth.txt`` (1-based ILSVRC ids, line i =
                   image i) with its ``meta.mat`` (id -> wnid), Kaggle's ``LOC_val_solution.csv``
                   (``ImageId,PredictionString``, first token the wnid), or a plain text file of
                   ``<file name> <wnid>`` lines.

Resumable: an output that exists is complete (each is written under a hidden temporary name,
then renamed), so a second run skips it and an interrupted run continues where it stopped
(leftover temporary files are removed first). A source that is not in the expected layout is
one DataError line naming what was expected.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image
from rich.console import Console

from sdvicl_bench.data.demo import voc_palette
from sdvicl_bench.data.images import UNREADABLE, load_mat
from sdvicl_bench.data.pascal import VOC_CLASSES, VOID_LABEL
from sdvicl_bench.errors import ConfigError, DataError
from sdvicl_bench.report.progress import progress_bar

DATASETS: tuple[str, ...] = ("sbd", "imagenet-val")
"""What `prepare` converts."""

TMP_PREFIX = ".sdvicl-prepare-"
"""Hidden temporary names (no loader lists hidden files); removed when a run starts."""

VOC_DONE = ".sdvicl-from-voc.txt"
"""In SegmentationClassAug/: ids whose mask was written from VOC's own SegmentationClass (so
a mask written from SBD before VOC's masks were there is redone from VOC's)."""

_VAL_FILE = re.compile(r"^(ILSVRC2012_val_\d{8})\.jpe?g$", re.IGNORECASE)
_WNID = re.compile(r"^n\d{8}$")


@dataclass
class PrepareResult:
    """What a conversion did: files written now, files already there (skipped), notes."""

    dataset: str
    out_dir: Path
    written: int = 0
    skipped: int = 0
    copied: int = 0  # imagenet-val: files copied because a hard link was not possible
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: ``sbd: 12,031 files in <dir> (12,031 written, 0 already there)``."""
        total = self.written + self.skipped
        how = f", {self.copied:,} copied (no hard link)" if self.copied else ""
        return (
            f"{self.dataset}: {total:,} files in {self.out_dir} ({self.written:,} written, "
            f"{self.skipped:,} already there{how})"
        )


@dataclass(frozen=True)
class Job:
    """One output file and how to make it: `make(tmp)` writes it under a temporary name."""

    out: Path
    make: Callable[[Path], Any]
    after: Callable[[], None] | None = None  # run once the output is in place
    redo: bool = False  # make it even where `out` exists (an output from another source)


def prepare(
    dataset: str,
    source: Path,
    data_root: Path,
    *,
    labels: Path | None = None,
    console: Console | None = None,
    quiet: bool = False,
) -> PrepareResult:
    """Convert `source` for `dataset` (one of `DATASETS`) into the loaders' layout under
    `data_root` (the config's `data.root`). `labels`: imagenet-val's labels file or devkit
    folder (found next to the images when omitted)."""
    data_root = Path(data_root).expanduser()
    source = Path(source).expanduser()
    if dataset == "sbd":
        return prepare_sbd(source, data_root / "VOC2012", console=console, quiet=quiet)
    if dataset == "imagenet-val":
        out = data_root / "imagenet" / "val"
        return prepare_imagenet_val(source, out, labels=labels, console=console, quiet=quiet)
    raise ConfigError(
        f"data prepare knows no dataset {dataset!r}. Fix: use one of: {', '.join(DATASETS)}."
    )


# ----------------------------------------------------------------------------- running jobs


def run_jobs(
    jobs: Sequence[Job], result: PrepareResult, *, console: Console | None, quiet: bool
) -> PrepareResult:
    """Make every job's output that is not there yet, each written atomically (temporary
    name, then rename), with a rich progress bar; count written and skipped files."""
    pending = [job for job in jobs if job.redo or not job.out.exists()]
    result.skipped += len(jobs) - len(pending)
    with progress_bar(console=console, disable=quiet) as progress:
        bar = progress.add_task(result.dataset, total=len(jobs), completed=result.skipped)
        for job in pending:
            write_atomic(job.out, job.make)
            if job.after is not None:
                job.after()
            result.written += 1
            progress.advance(bar)
    return result


def write_atomic(out: Path, make: Callable[[Path], Any]) -> None:
    """`make(tmp)` writes a hidden temporary file next to `out`; it is renamed to `out` only
    when complete, and removed when `make` fails (or is interrupted)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{TMP_PREFIX}{out.name}.{os.getpid()}.tmp")
    try:
        make(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_leftovers(folders: Sequence[Path]) -> int:
    """Delete the temporary files an interrupted run left in `folders`; return how many."""
    removed = 0
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{TMP_PREFIX}*"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# ----------------------------------------------------------------------------- SBD


def sbd_cls_dir(source: Path) -> Path:
    """SBD's ``cls/`` folder of .mat files under `source`: `source` itself, ``dataset/cls``
    or ``benchmark_RELEASE/dataset/cls``; a one-line DataError naming the layout otherwise."""
    for candidate in (
        source,
        source / "cls",
        source / "dataset" / "cls",
        source / "benchmark_RELEASE" / "dataset" / "cls",
    ):
        if candidate.is_dir() and any(candidate.glob("*.mat")):
            return candidate
    raise DataError(
        f"{source} is not SBD: expected its dataset/cls/<id>.mat files (benchmark.tgz unpacks "
        "to benchmark_RELEASE/dataset/cls/). Fix: pass the folder benchmark.tgz was unpacked "
        "into (or its dataset/ folder)."
    )


def read_sbd_mat(path: Path) -> np.ndarray:
    """The class ids uint8 (H, W) of an SBD ``cls/<id>.mat`` (``GTcls.Segmentation``, 0..20)."""
    fix = "Fix: unpack it again from SBD's benchmark.tgz."
    contents = load_mat(path, fix)
    gt = contents.get("GTcls")
    seg = gt.get("Segmentation") if isinstance(gt, dict) else getattr(gt, "Segmentation", None)
    labels = np.asarray(seg) if seg is not None else None
    if labels is None or labels.ndim != 2 or labels.dtype == object:
        raise DataError(f"{path} holds no GTcls.Segmentation label map (a 2-D array). {fix}")
    return _class_ids(labels, path, fix)


def _class_ids(labels: np.ndarray, path: Path, fix: str) -> np.ndarray:
    """`labels` as uint8, refused (one line) when a value is not 0..20 or 255."""
    values = np.unique(labels)
    bad = [v for v in values.tolist() if not (0 <= v <= len(VOC_CLASSES) or v == VOID_LABEL)]
    if bad:
        raise DataError(
            f"{path} holds values {bad[:5]}, not VOC class ids (0..20, 255 void). {fix}"
        )
    return labels.astype(np.uint8)


def read_voc_mask(path: Path) -> np.ndarray:
    """Class ids uint8 (H, W) of a VOC2012 ``SegmentationClass/<id>.png``: a palette ('P')
    PNG's indices (VOC's palette: index = class id, 255 = void border), or an RGB copy's
    colours mapped back through VOC's colour map."""
    fix = "Fix: unpack it again from VOCtrainval_11-May-2012.tar."
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "L"):
                labels = np.asarray(im)
            else:
                labels = _unpalette(np.asarray(im.convert("RGB")), path, fix)
    except UNREADABLE as err:
        raise DataError(f"{path} is not a readable image ({type(err).__name__}). {fix}") from None
    return _class_ids(labels, path, fix)


def _unpalette(rgb: np.ndarray, path: Path, fix: str) -> np.ndarray:
    """VOC colours (H, W, 3) -> class ids via VOC's colour map; another colour is an error."""
    palette = np.asarray(voc_palette(), dtype=np.int64).reshape(256, 3)
    ids = [*range(len(VOC_CLASSES) + 1), VOID_LABEL]
    code = {int(c @ (65536, 256, 1)): i for i, c in ((i, palette[i]) for i in ids)}
    packed = rgb.astype(np.int64) @ np.array([65536, 256, 1])
    keys, inverse = np.unique(packed, return_inverse=True)
    unknown = [k for k in keys.tolist() if k not in code]
    if unknown:
        k = unknown[0]
        colour = (k >> 16, (k >> 8) & 255, k & 255)
        raise DataError(f"{path} holds colour {colour}, not one of VOC's class colours. {fix}")
    lut = np.array([code[k] for k in keys.tolist()], dtype=np.uint8)
    return lut[inverse].reshape(rgb.shape[:2])


def save_label_png(labels: np.ndarray, tmp: Path) -> None:
    """Write class ids as an 8-bit grey ('L') PNG (what the VOC loader reads)."""
    Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="L").save(tmp, format="PNG")


def sbd_jobs(cls_dir: Path, voc_masks: Path | None, out_dir: Path) -> list[Job]:
    """One job per mask of the union of SBD's .mat files and VOC's own PNGs (VOC's win).

    An output of an id VOC has a mask for, not yet written from it (not in `VOC_DONE`: it
    was written from SBD, or by another tool), is redone from VOC's mask.
    """
    done_file = out_dir / VOC_DONE
    from_voc = set(done_file.read_text(encoding="utf-8").split()) if done_file.is_file() else set()
    voc = {p.stem: p for p in sorted(voc_masks.glob("*.png"))} if voc_masks else {}
    sbd = {p.stem: p for p in sorted(cls_dir.glob("*.mat"))}
    jobs = []
    for image_id in sorted(set(sbd) | set(voc)):
        out = out_dir / f"{image_id}.png"
        if image_id in voc:
            jobs.append(
                Job(
                    out,
                    lambda tmp, src=voc[image_id]: save_label_png(read_voc_mask(src), tmp),
                    after=lambda i=image_id: _append_line(done_file, i),
                    redo=image_id not in from_voc,
                )
            )
        else:
            src = sbd[image_id]
            jobs.append(Job(out, lambda tmp, src=src: save_label_png(read_sbd_mat(src), tmp)))
    return jobs


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(f"{line}\n")


def prepare_sbd(
    source: Path, voc_root: Path, *, console: Console | None = None, quiet: bool = False
) -> PrepareResult:
    """SBD's cls/*.mat (and VOC2012's own SegmentationClass/, where present under
    `voc_root`) -> `voc_root`/SegmentationClassAug/*.png (see the module docstring)."""
    cls_dir = sbd_cls_dir(Path(source))
    out_dir = Path(voc_root) / "SegmentationClassAug"
    voc_masks = Path(voc_root) / "SegmentationClass"
    has_voc = voc_masks.is_dir() and any(voc_masks.glob("*.png"))
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers([out_dir])
    result = PrepareResult("sbd", out_dir)
    if not has_voc:
        result.notes.append(
            f"{voc_masks} not found: SBD's masks only (HSNet's set also holds VOC2012's own "
            "2,913, which win where both exist); unpack VOC2012 there and run this again"
        )
    jobs = sbd_jobs(cls_dir, voc_masks if has_voc else None, out_dir)
    return run_jobs(jobs, result, console=console, quiet=quiet)


# ----------------------------------------------------------------------------- ImageNet val


LABEL_NAMES = (
    "LOC_val_solution.csv",
    "ILSVRC2012_devkit_t12",
    "ILSVRC2012_validation_ground_truth.txt",
)
"""Label sources looked for next to the images (in the folder, then its parent)."""

_FIX_LABELS = (
    "Fix: pass the labels: the devkit (ILSVRC2012_devkit_t12/, or its "
    "data/ILSVRC2012_validation_ground_truth.txt with meta.mat beside it), Kaggle's "
    "LOC_val_solution.csv, or a text file of '<file name> <wnid>' lines."
)


def val_images(source: Path) -> dict[str, Path]:
    """``ILSVRC2012_val_<8 digits>`` -> its file in the flat folder `source`; a one-line
    DataError when the folder is not that layout."""
    if not source.is_dir():
        raise DataError(
            f"ImageNet val source not found: {source}. Fix: pass the folder "
            "ILSVRC2012_img_val.tar was unpacked into (one flat folder of "
            "ILSVRC2012_val_*.JPEG)."
        )
    found = {}
    for path in source.iterdir():
        match = _VAL_FILE.match(path.name)
        if match and path.is_file():
            found[match[1]] = path
    if not found:
        sorted_already = any(p.is_dir() and _WNID.match(p.name) for p in source.iterdir())
        hint = (
            " (it holds <wnid>/ class folders already: pass data.root=<folder above> instead)"
            if sorted_already
            else ""
        )
        raise DataError(
            f"{source} holds no ILSVRC2012_val_*.JPEG files{hint}. Fix: pass the folder "
            "ILSVRC2012_img_val.tar was unpacked into (one flat folder of the 50,000 images)."
        )
    return found


def find_labels(source: Path) -> Path:
    """The labels next to the images (`LABEL_NAMES`, in `source` then its parent)."""
    for folder in (source, source.parent):
        for name in LABEL_NAMES:
            if (folder / name).exists():
                return folder / name
    raise DataError(f"No ImageNet val labels found in {source} or {source.parent}. {_FIX_LABELS}")


def read_val_labels(path: Path) -> dict[str, str]:
    """``ILSVRC2012_val_<8 digits>`` -> wnid, from any supported labels source (module doc)."""
    path = Path(path)
    if path.is_dir():  # the devkit folder
        for truth in (
            path / "data" / "ILSVRC2012_validation_ground_truth.txt",
            path / "ILSVRC2012_validation_ground_truth.txt",
        ):
            if truth.is_file():
                return read_devkit_labels(truth, truth.parent / "meta.mat")
        raise DataError(
            f"{path} holds no data/ILSVRC2012_validation_ground_truth.txt. {_FIX_LABELS}"
        )
    if not path.is_file():
        raise DataError(f"ImageNet val labels not found: {path}. {_FIX_LABELS}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path} cannot be read ({type(err).__name__}). {_FIX_LABELS}") from None
    body = [line.strip() for line in lines if line.strip()]
    if body and body[0].replace(" ", "").startswith("ImageId,"):
        return read_kaggle_labels(path)
    if body and all(line.isdigit() for line in body):
        return read_devkit_labels(path, path.parent / "meta.mat")
    return read_pairs(path, body)


def read_kaggle_labels(path: Path) -> dict[str, str]:
    """Kaggle's LOC_val_solution.csv: ``ImageId,PredictionString``; the first token of the
    prediction string is the wnid."""
    out = {}
    with path.open(encoding="utf-8", newline="") as f:
        for number, row in enumerate(csv.DictReader(f), start=2):
            image = (row.get("ImageId") or "").strip()
            tokens = (row.get("PredictionString") or "").split()
            if not image or not tokens or not _WNID.match(tokens[0]):
                raise DataError(
                    f"{path}, line {number}: expected 'ILSVRC2012_val_<n>,<wnid> <box> ...'. "
                    + _FIX_LABELS
                )
            out[_stem(image)] = tokens[0]
    return out


def read_devkit_labels(truth: Path, meta: Path) -> dict[str, str]:
    """The devkit's ground truth (line i: the 1-based ILSVRC2012_ID of image i) mapped to
    wnids through its ``meta.mat`` (``synsets``: ILSVRC2012_ID, WNID)."""
    if not meta.is_file():
        raise DataError(
            f"{truth} gives ILSVRC ids, and the meta.mat that maps them to wnids is not beside "
            f"it ({meta}). Fix: keep the devkit's data/ folder whole, or pass another labels file."
        )
    try:
        synsets = scipy.io.loadmat(meta, squeeze_me=True, struct_as_record=False)["synsets"]
        wnid_of = {int(s.ILSVRC2012_ID): str(s.WNID) for s in np.atleast_1d(synsets)}
    except Exception as err:  # a bad file: scipy's many errors, no synsets, other fields
        raise DataError(
            f"{meta} is not the devkit's meta.mat (synsets with ILSVRC2012_ID and WNID; "
            f"{type(err).__name__}). Fix: unpack it again from ILSVRC2012_devkit_t12.tar.gz."
        ) from None
    out = {}
    for number, line in enumerate(truth.read_text(encoding="utf-8").split(), start=1):
        wnid = wnid_of.get(int(line))
        if wnid is None:
            raise DataError(
                f"{truth}, line {number}: ILSVRC id {line} is not in {meta}. Fix: use the "
                "devkit's own meta.mat."
            )
        out[f"ILSVRC2012_val_{number:08d}"] = wnid
    return out


def read_pairs(path: Path, lines: list[str]) -> dict[str, str]:
    """Plain ``<file name> <wnid>`` lines (space, tab or comma); one header line allowed."""
    out = {}
    for number, line in enumerate(lines, start=1):
        tokens = line.replace(",", " ").split()
        if len(tokens) >= 2 and _WNID.match(tokens[1]):
            out[_stem(tokens[0])] = tokens[1]
        elif number > 1 or out:
            raise DataError(
                f"{path}, line {number}: expected '<file name> <wnid>' (e.g. "
                f"'ILSVRC2012_val_00000001.JPEG n01751748'), got {line[:60]!r}. " + _FIX_LABELS
            )
    if not out:
        raise DataError(f"{path} holds no '<file name> <wnid>' lines. {_FIX_LABELS}")
    return out


def _stem(name: str) -> str:
    """``ILSVRC2012_val_00000001`` from a file name or path with or without extension."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


class _Placer:
    """Hard links (same file system), else copies; the first refused link switches to copies."""

    def __init__(self) -> None:
        self.link = True
        self.copied = 0

    def __call__(self, src: Path, tmp: Path) -> None:
        if self.link:
            try:
                os.link(src, tmp)
                return
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP):
                    raise
                self.link = False
        shutil.copy2(src, tmp)
        self.copied += 1


def imagenet_jobs(
    images: dict[str, Path], labels: dict[str, str], out_dir: Path, place: _Placer
) -> list[Job]:
    """One job per image: `out_dir/<wnid>/<file name>`; every image needs a label."""
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise DataError(
            f"{len(unlabelled):,} of the {len(images):,} images have no label (first: "
            f"{unlabelled[0]}). Fix: pass the labels of ILSVRC2012 val (all 50,000 images)."
        )
    return [
        Job(out_dir / labels[key] / src.name, lambda tmp, src=src: place(src, tmp))
        for key, src in sorted(images.items())
    ]


def prepare_imagenet_val(
    source: Path,
    out_dir: Path,
    *,
    labels: Path | None = None,
    console: Console | None = None,
    quiet: bool = False,
) -> PrepareResult:
    """A flat ILSVRC2012 val folder -> `out_dir`/<wnid>/<file> (see the module docstring)."""
    source = Path(source)
    images = val_images(source)
    mapping = read_val_labels(Path(labels) if labels else find_labels(source))
    out_dir = Path(out_dir)
    remove_leftovers([out_dir, *(out_dir / w for w in sorted(set(mapping.values())))])
    place = _Placer()
    result = PrepareResult("imagenet-val", out_dir)
    extra = len(set(mapping) - set(images))
    if extra:
        result.notes.append(f"{extra:,} labelled images are not in {source} (a partial copy?)")
    run_jobs(imagenet_jobs(images, mapping, out_dir, place), result, console=console, quiet=quiet)
    result.copied = place.copied
    return result
