"""The Pascal VOC checks: fgseg (Pascal-5i lists, SBD masks), det (ImageSets/Main,
Annotations) and edges (VOC photos; BSDS500 via `others`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdvicl_bench.data.pascal import (
    NUM_FOLDS,
    SPLIT_SHA256,
    SPLITS,
    VOC_CLASSES,
    VOID_LABEL,
    file_sha256,
    read_split_list,
    split_list_path,
)
from sdvicl_bench.data.voc_det import parse_annotation, read_image_set
from sdvicl_bench.errors import DataError
from sdvicl_bench.workflows.data_check.context import (
    FIX_SBD,
    FIX_SPLITS,
    FIX_VOC,
    SBD_AUG_MASKS,
    VOC_JPEG_IMAGES,
    VOC_MAIN,
    _Ctx,
    sample,
)
from sdvicl_bench.workflows.data_check.others import _check_bsds
from sdvicl_bench.workflows.data_check.report import MISSING, WARNING, Check
from sdvicl_bench.workflows.data_check.rows import (
    _bad_file,
    _count,
    _coverage,
    _data_error,
    _len,
    _names,
    _open,
    _root_absent,
    _sample_rows,
)

# ----------------------------------------------------------------------------- Pascal VOC


def _voc_base(ctx: _Ctx) -> tuple[list[Check], set[str] | None]:
    """The VOC root and JPEGImages/ (every VOC task reads the photos): the rows and the
    photo file names (None when the root is absent: nothing more to check)."""
    if not ctx.root.is_dir():
        row = _root_absent(ctx, "VOC2012", FIX_VOC)
        return [row], None
    photos = _names(ctx.root / "JPEGImages", ".jpg")
    row = _count(
        ctx,
        "VOC2012",
        "JPEGImages/",
        _len(photos),
        VOC_JPEG_IMAGES,
        lambda p: p["num_images"],
        FIX_VOC,
        "images",
    )
    return [row], photos or set()


def _check_pascal5i(ctx: _Ctx) -> list[Check]:
    """fgseg: JPEGImages/, SegmentationClassAug/ (SBD), the 8 Pascal-5i lists, the listed
    images' photos and masks, a sample of masks (mode, values 0..20 or 255, size)."""
    rows, photos = _voc_base(ctx)
    if photos is None:
        return rows
    masks = _names(ctx.root / "SegmentationClassAug", ".png")
    rows.append(
        _count(
            ctx,
            "SBD",
            "SegmentationClassAug/",
            _len(masks),
            SBD_AUG_MASKS,
            lambda p: p["num_images"],
            FIX_SBD,
            "masks",
        )
    )
    list_rows, entries = _split_list_rows(ctx, _splits_dir(ctx))
    rows += list_rows
    if not entries:
        return rows
    ids = sorted({e.image_id for e in entries})
    rows.append(_photo_coverage(ctx, ids, photos))
    if masks is not None:
        rows.append(
            _coverage(
                ctx,
                "SBD",
                "SegmentationClassAug/ (listed ids)",
                ids,
                lambda i: f"{i}.png" in masks,
                FIX_SBD,
            )
        )
    class_of = {}
    for entry in entries:
        class_of.setdefault(entry.image_id, entry.class_id)
    chosen = [i for i in sample(ids, ctx.sample) if f"{i}.jpg" in photos]
    with_masks = masks is not None
    return rows + _voc_sample(ctx, [(i, class_of[i] if with_masks else None) for i in chosen])


def _photo_coverage(ctx: _Ctx, ids: Sequence[str], photos: set[str]) -> Check:
    """The coverage row of JPEGImages/: a photo for each listed id."""
    return _coverage(
        ctx, "VOC2012", "JPEGImages/ (listed ids)", ids, lambda i: f"{i}.jpg" in photos, FIX_VOC
    )


def _open_photo(ctx: _Ctx, image_id: str) -> tuple[Image.Image | None, Check | None]:
    """A sampled VOC photo: (the image, None), or (None, the row saying why it is unusable)."""
    path = ctx.root / "JPEGImages" / f"{image_id}.jpg"
    photo, why = _open(path)
    if photo is None:
        return None, _bad_file("VOC2012", path, why, ctx.fix(FIX_VOC))
    return photo, None


def _splits_dir(ctx: _Ctx) -> Path:
    """Where the Pascal-5i lists are: data.splits, else <root>/<task.splits_subdir>."""
    splits = ctx.cfg.data.splits
    return Path(splits).expanduser() if splits else ctx.root / ctx.cfg.task.splits_subdir


def _split_list_rows(ctx: _Ctx, splits_dir: Path) -> tuple[list[Check], list[Any]]:
    """One row for the 8 lists (present, sha256 pins for real data, parsed), and the
    entries of the task's folds in the lists that could be read."""
    real = ctx.demo is None
    absent, bad, entries = [], [], []
    folds = set(ctx.cfg.task.folds)
    for split in SPLITS:
        for fold in range(NUM_FOLDS):
            path = split_list_path(splits_dir, split, fold)
            if not path.is_file():
                absent.append(path)
                continue
            if real and file_sha256(path) != SPLIT_SHA256[f"{split}{fold}"]:
                bad.append(f"{path} has another sha256 than the published list")
                continue
            try:
                listed = read_split_list(path)
            except DataError as err:
                bad.append(str(err))
                continue
            if fold in folds:
                entries += listed
    total = len(SPLITS) * NUM_FOLDS
    found = f"{total - len(absent) - len(bad)} of {total}"
    what = "splits trn,val/fold0-3.txt"
    expected = f"{total}" + ("" if real else " (demo)")
    if bad:
        fix = "Fix: delete it to fetch it again, or replace it with the published file"
        return [
            Check("Pascal-5i", what, found, expected, MISSING, problem=bad[0], fix=ctx.fix(fix))
        ], entries
    if absent and real:
        problem = (
            f"{len(absent)} list(s) not here yet (first: {absent[0]}); `run` fetches them "
            "(needs the network)"
        )
        return [
            Check("Pascal-5i", what, found, expected, WARNING, problem=problem, fix=FIX_SPLITS)
        ], entries
    if absent:
        return [
            Check(
                "Pascal-5i",
                what,
                found,
                expected,
                MISSING,
                problem=f"{absent[0]} not found",
                fix=ctx.fix(FIX_SPLITS),
            )
        ], entries
    return [Check("Pascal-5i", what, found, expected)], entries


def _voc_sample(ctx: _Ctx, chosen: Sequence[tuple[str, int | None]]) -> list[Check]:
    """Open each chosen photo (and, with a class, its SegmentationClassAug mask)."""
    problems: list[Check] = []
    opened = 0
    for image_id, class_id in chosen:
        photo, bad = _open_photo(ctx, image_id)
        opened += 1
        if photo is None:
            problems.append(bad)
            continue
        if class_id is not None:
            opened += 1
            problems += _mask_problems(ctx, image_id, class_id, photo.size)
    return _sample_rows("VOC2012", opened, problems)


def _mask_problems(ctx: _Ctx, image_id: str, class_id: int, size: tuple[int, int]) -> list[Check]:
    """A SegmentationClassAug mask: readable, 'P' or 'L', the photo's size, values 0..20 or
    255, the listed class present."""
    path = ctx.root / "SegmentationClassAug" / f"{image_id}.png"
    fix = ctx.fix(FIX_SBD.replace("Fix: ", "Fix: delete it, then "))
    mask, why = _open(path)
    if mask is None:
        return [_bad_file("SBD", path, why, fix)]
    if mask.mode not in ("P", "L"):
        return [_bad_file("SBD", path, f"a {mask.mode} PNG, not class ids ('P' or 'L')", fix)]
    if mask.size != size:
        return [_bad_file("SBD", path, f"size {mask.size} differs from the photo's {size}", fix)]
    values = np.unique(np.asarray(mask))
    odd = [int(v) for v in values if not (v <= len(VOC_CLASSES) or v == VOID_LABEL)]
    if odd:
        why = f"values {odd[:5]} outside 0..20 and 255 (a colour-mapped mask?)"
        return [_bad_file("SBD", path, why, fix, WARNING)]
    if class_id not in values:
        why = f"does not hold class {class_id} ({VOC_CLASSES[class_id - 1]}), which the list says"
        return [_bad_file("SBD", path, why, fix, WARNING)]
    return []


def _image_set_rows(ctx: _Ctx, splits: Sequence[str]) -> tuple[list[Check], list[str]]:
    """ImageSets/Main/<split>.txt rows (count against VOC's) and the ids they list (all the
    splits', sorted, each once)."""
    rows, ids = [], {}
    for split in splits:
        what = f"ImageSets/Main/{split}.txt"
        try:
            ids[split] = read_image_set(ctx.root, split)
        except DataError:
            rows.append(_count(ctx, "VOC2012", what, None, None, None, FIX_VOC, "ids"))
            continue
        demo = (
            (lambda p: (p["num_images"] + 1) // 2)
            if split == "train"
            else (lambda p: p["num_images"] // 2)
        )
        rows.append(
            _count(ctx, "VOC2012", what, len(ids[split]), VOC_MAIN[split], demo, FIX_VOC, "ids")
        )
    return rows, sorted({i for split_ids in ids.values() for i in split_ids})


def _check_voc_det(ctx: _Ctx) -> list[Check]:
    """det: JPEGImages/, Annotations/, ImageSets/Main/{train,val}.txt, the listed ids' XML and
    photos, a sample of annotations parsed (size matching the photo)."""
    rows, photos = _voc_base(ctx)
    if photos is None:
        return rows
    xml = _names(ctx.root / "Annotations", ".xml")
    rows.append(
        _count(
            ctx,
            "VOC2012",
            "Annotations/",
            _len(xml),
            VOC_JPEG_IMAGES,
            lambda p: p["num_images"],
            FIX_VOC,
            "annotations",
        )
    )
    set_rows, listed = _image_set_rows(ctx, ("train", "val"))
    rows += set_rows
    if not listed:
        return rows
    rows.append(_photo_coverage(ctx, listed, photos))
    if xml is not None:
        rows.append(
            _coverage(
                ctx,
                "VOC2012",
                "Annotations/ (listed ids)",
                listed,
                lambda i: f"{i}.xml" in xml,
                FIX_VOC,
            )
        )
    problems, opened = [], 0
    for image_id in sample([i for i in listed if f"{i}.jpg" in photos], ctx.sample):
        photo, bad = _open_photo(ctx, image_id)
        opened += 1
        if photo is None:
            problems.append(bad)
            continue
        if xml is None or f"{image_id}.xml" not in xml:
            continue
        opened += 1
        try:
            ann = parse_annotation(ctx.root / "Annotations" / f"{image_id}.xml")
        except DataError as err:
            problems.append(_data_error("VOC2012", f"annotation {image_id}.xml", err))
            continue
        if (ann.width, ann.height) != photo.size:
            why = f"<size> {ann.width}x{ann.height} differs from the photo's {photo.size}"
            path = ctx.root / "Annotations" / f"{image_id}.xml"
            problems.append(_bad_file("VOC2012", path, why, ctx.fix(FIX_VOC), WARNING))
    return rows + _sample_rows("VOC2012", opened, problems)


def _check_edges(ctx: _Ctx) -> list[Check]:
    """edges: VOC photos of ImageSets/Main/{split,pool} (source=voc) or BSDS500."""
    if ctx.cfg.task.options.get("source", "voc") == "bsds500":
        return _check_bsds(ctx)
    rows, photos = _voc_base(ctx)
    if photos is None:
        return rows
    set_rows, listed = _image_set_rows(ctx, _voc_splits(ctx))
    rows += set_rows
    if not listed:
        return rows
    rows.append(_photo_coverage(ctx, listed, photos))
    chosen = [(i, None) for i in sample([i for i in listed if f"{i}.jpg" in photos], ctx.sample)]
    return rows + _voc_sample(ctx, chosen)


def _voc_splits(ctx: _Ctx) -> tuple[str, ...]:
    """The VOC image sets the task reads (its split and prompt pool), train/val only."""
    wanted = [ctx.cfg.task.split, ctx.cfg.task.prompt_pool]
    return tuple(s for s in ("train", "val") if s in wanted) or ("train", "val")
