"""The checks of the datasets other than Pascal VOC: BSDS500 (edges, source=bsds500),
Cityscapes (semseg), DeepFashion FLD (keypoints) and ImageNet val (colorization)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from sdvicl_bench.data.bsds import SPLITS as BSDS_SPLITS
from sdvicl_bench.data.bsds import BSDSDataset
from sdvicl_bench.data.deepfashion import (
    BBOX_FILE,
    LANDMARKS_FILE,
    PARTITION_FILE,
    VISIBLE,
    parse_bboxes,
    parse_landmarks,
    parse_partition,
)
from sdvicl_bench.data.imagenet import IMAGE_SUFFIXES
from sdvicl_bench.errors import DataError
from sdvicl_bench.workflows.data_check.context import (
    BSDS_IMAGES,
    CITYSCAPES_IMAGES,
    CITYSCAPES_MAX_LABEL,
    FIX_BSDS,
    FIX_CITYSCAPES,
    FIX_FLD,
    FIX_IMAGENET,
    IMAGENET_CLASSES,
    IMAGENET_VAL_IMAGES,
    _Ctx,
    sample,
)
from sdvicl_bench.workflows.data_check.report import MISSING, OK, WARNING, Check
from sdvicl_bench.workflows.data_check.rows import (
    _bad_file,
    _count,
    _coverage,
    _data_error,
    _len,
    _names,
    _open,
    _problem,
    _root_absent,
    _sample_rows,
    _subfolders,
)

# ----------------------------------------------------------------------------- BSDS500


def _check_bsds(ctx: _Ctx) -> list[Check]:
    """edges with source=bsds500: images/{train,test} and their groundTruth .mat files."""
    try:
        bsds = BSDSDataset(ctx.root)
    except DataError as err:
        return [Check("BSDS500", "root", "absent", "BSR/BSDS500/data/", MISSING, problem=str(err))]
    rows: list[Check] = []
    needed: list[tuple[str, str]] = []
    for split in ("test", "train"):
        images = _names(bsds.data_dir / "images" / split, ".jpg")
        rows.append(
            _count(
                ctx,
                "BSDS500",
                f"images/{split}/",
                _len(images),
                BSDS_IMAGES[split],
                lambda p: p["per_split"],
                FIX_BSDS,
                "images",
            )
        )
        needed += [(split, name[:-4]) for name in sorted(images or ())]
    if not needed:
        return rows
    truths = {s: _names(bsds.data_dir / "groundTruth" / s, ".mat") or set() for s in BSDS_SPLITS}
    rows.append(
        _coverage(
            ctx,
            "BSDS500",
            "groundTruth/ (per image)",
            [f"{s}/{i}" for s, i in needed],
            lambda k: f"{k.split('/')[1]}.mat" in truths[k.split("/")[0]],
            FIX_BSDS,
        )
    )
    problems, opened = [], 0
    for split, image_id in sample(needed, ctx.sample):
        opened += 1
        photo, why = _open(bsds.image_path(image_id, split))
        if photo is None:
            problems.append(
                _bad_file("BSDS500", bsds.image_path(image_id, split), why, ctx.fix(FIX_BSDS))
            )
            continue
        if f"{image_id}.mat" not in truths[split]:
            continue
        opened += 1
        try:
            edges = bsds.boundaries(image_id, split)
        except DataError as err:
            problems.append(_data_error("BSDS500", f"groundTruth {split}/{image_id}.mat", err))
            continue
        if edges.shape[::-1] != photo.size:
            why = f"boundary map {edges.shape[::-1]} differs from the image's {photo.size}"
            problems.append(
                _bad_file("BSDS500", bsds.gt_path(image_id, split), why, ctx.fix(FIX_BSDS))
            )
    return rows + _sample_rows("BSDS500", opened, problems)


# ----------------------------------------------------------------------------- Cityscapes


_CS_IMAGE, _CS_LABEL = "_leftImg8bit.png", "_gtFine_labelIds.png"


def _city_ids(folder: Path, suffix: str) -> list[str] | None:
    """`<city>/<name>` ids of `folder/<city>/<name><suffix>`, sorted; None when absent."""
    cities = _subfolders(folder)
    if cities is None:
        return None
    ids = []
    for city in cities:
        names = _names(folder / city, suffix) or set()
        ids += [f"{city}/{n[: -len(suffix)]}" for n in names]
    return sorted(ids)


def _check_cityscapes(ctx: _Ctx) -> list[Check]:
    """semseg: leftImg8bit/{split,pool} counted (val 500, train 2,975), a gtFine labelIds
    PNG per image, a sample (RGB photo; 'L' labels of the photo's size, ids 0..33)."""
    if not ctx.root.is_dir():
        return [_root_absent(ctx, "Cityscapes", FIX_CITYSCAPES)]
    rows: list[Check] = []
    needed: list[tuple[str, str]] = []
    splits = list(dict.fromkeys([ctx.cfg.task.split, ctx.cfg.task.prompt_pool]))
    demo_keys = {"train": "num_train", "val": "num_val"}
    for split in splits:
        ids = _city_ids(ctx.root / "leftImg8bit" / split, _CS_IMAGE)
        key = demo_keys.get(split, "")
        rows.append(
            _count(
                ctx,
                "Cityscapes",
                f"leftImg8bit/{split}/",
                _len(ids),
                CITYSCAPES_IMAGES.get(split),
                lambda p, k=key: p[k],
                FIX_CITYSCAPES,
                "images",
            )
        )
        needed += [(split, i) for i in ids or ()]
    if not needed:
        return rows
    labels = {s: set(_city_ids(ctx.root / "gtFine" / s, _CS_LABEL) or ()) for s in splits}
    keys = [f"{s}/{i}" for s, i in needed]
    rows.append(
        _coverage(
            ctx,
            "Cityscapes",
            "gtFine/ labelIds (per image)",
            keys,
            lambda k: k.partition("/")[2] in labels[k.partition("/")[0]],
            FIX_CITYSCAPES,
        )
    )
    problems, opened = [], 0
    for split, image_id in sample(needed, ctx.sample):
        opened += 1
        path = ctx.root / "leftImg8bit" / split / f"{image_id}{_CS_IMAGE}"
        photo, why = _open(path)
        if photo is None:
            problems.append(_bad_file("Cityscapes", path, why, ctx.fix(FIX_CITYSCAPES)))
            continue
        if image_id not in labels[split]:
            continue
        opened += 1
        problems += _label_ids_problems(ctx, split, image_id, photo.size)
    return rows + _sample_rows("Cityscapes", opened, problems)


def _label_ids_problems(ctx: _Ctx, split: str, image_id: str, size: tuple[int, int]) -> list:
    """A gtFine labelIds PNG: readable, 'L' (or 'P'), the photo's size, ids 0..33."""
    path = ctx.root / "gtFine" / split / f"{image_id}{_CS_LABEL}"
    fix = ctx.fix(FIX_CITYSCAPES)
    labels, why = _open(path)
    if labels is None:
        return [_bad_file("Cityscapes", path, why, fix)]
    if labels.mode not in ("L", "P"):
        return [_bad_file("Cityscapes", path, f"a {labels.mode} PNG, not 8-bit labelIds", fix)]
    if labels.size != size:
        why = f"size {labels.size} differs from the photo's {size}"
        return [_bad_file("Cityscapes", path, why, fix)]
    top = int(np.asarray(labels).max())
    if top > CITYSCAPES_MAX_LABEL:
        why = f"holds id {top} > {CITYSCAPES_MAX_LABEL}: not labelIds (labelTrainIds or colour?)"
        return [_bad_file("Cityscapes", path, why, fix, WARNING)]
    return []


# ----------------------------------------------------------------------------- DeepFashion


def _check_fld(ctx: _Ctx) -> list[Check]:
    """keypoints: list_landmarks / list_eval_partition parsed, list_bbox (needed with
    normalize=box), the photos of the split and pool under Img/, a sample (readable,
    visible landmarks inside the photo)."""
    if not ctx.root.is_dir():
        return [_root_absent(ctx, "DeepFashion FLD", FIX_FLD)]
    rows: list[Check] = []
    records = partition = None
    for rel, parse in ((LANDMARKS_FILE, parse_landmarks), (PARTITION_FILE, parse_partition)):
        path = ctx.root / rel
        if not path.is_file():
            rows.append(
                _problem("DeepFashion FLD", rel, "absent", "present", "not found", ctx.fix(FIX_FLD))
            )
            continue
        try:
            parsed = parse(path)
        except DataError as err:
            rows.append(_data_error("DeepFashion FLD", rel, err))
            continue
        count = ctx.label(ctx.expected(None, lambda p: p["num_images"]))
        rows.append(Check("DeepFashion FLD", rel, f"{len(parsed):,} images", count))
        records, partition = (parsed, partition) if rel == LANDMARKS_FILE else (records, parsed)
    rows.append(_bbox_row(ctx, records))
    if records is None or partition is None:
        return rows
    splits = list(dict.fromkeys([ctx.cfg.task.split, ctx.cfg.task.prompt_pool]))
    chosen = [r for r in records if partition.get(r.image) in splits]
    for split in splits:
        n = sum(1 for r in records if partition.get(r.image) == split)
        status, problem = (OK, "") if n else (MISSING, f"no image of {LANDMARKS_FILE} is {split}")
        rows.append(
            Check(
                "DeepFashion FLD",
                f"{split} images",
                f"{n:,}",
                "some",
                status,
                problem=problem,
                fix=ctx.fix(FIX_FLD) if n == 0 else "",
            )
        )
    present = _present_under(ctx.root / "Img", [r.image for r in chosen])
    rows.append(
        _coverage(
            ctx,
            "DeepFashion FLD",
            f"Img/ ({', '.join(splits)})",
            [r.image for r in chosen],
            present,
            FIX_FLD,
        )
    )
    by_name = {r.image: r for r in chosen}
    problems, opened = [], 0
    for name in sample([n for n in by_name if present(n)], ctx.sample):
        opened += 1
        path = ctx.root / "Img" / name
        photo, why = _open(path)
        if photo is None:
            problems.append(_bad_file("DeepFashion FLD", path, why, ctx.fix(FIX_FLD)))
            continue
        record = by_name[name]
        xy = record.xy[record.visibility == VISIBLE]
        w, h = photo.size
        if len(xy) and ((xy < 0).any() or (xy[:, 0] > w).any() or (xy[:, 1] > h).any()):
            why = (
                f"visible landmarks fall outside the {w}x{h} photo: Img/ holds other photos than "
                "the lists (FLD's img.zip has the long side at 512)"
            )
            problems.append(_bad_file("DeepFashion FLD", path, why, ctx.fix(FIX_FLD), WARNING))
    return rows + _sample_rows("DeepFashion FLD", opened, problems)


def _bbox_row(ctx: _Ctx, records: list | None) -> Check:
    """Anno/list_bbox.txt: needed (and checked to cover the images) with normalize=box only."""
    path = ctx.root / BBOX_FILE
    needed = str(ctx.cfg.task.options.get("normalize", "image")) == "box"
    expected = "present" if needed else "optional (normalize=box)"
    if not path.is_file():
        if not needed:
            return Check("DeepFashion FLD", BBOX_FILE, "absent", expected)
        return Check(
            "DeepFashion FLD",
            BBOX_FILE,
            "absent",
            expected,
            MISSING,
            problem="not found (task.options.normalize=box reads it)",
            fix=ctx.fix(FIX_FLD),
        )
    try:
        boxes = parse_bboxes(path)
    except DataError as err:
        return replace(
            _data_error("DeepFashion FLD", BBOX_FILE, err), status=MISSING if needed else WARNING
        )
    lacking = [r.image for r in records or () if r.image not in boxes]
    if lacking:
        problem = f"no box for {len(lacking):,} image(s) of the landmark list (first: {lacking[0]})"
        return Check(
            "DeepFashion FLD",
            BBOX_FILE,
            f"{len(boxes):,} boxes",
            expected,
            MISSING if needed else WARNING,
            problem=problem,
            fix=ctx.fix(FIX_FLD),
        )
    return Check("DeepFashion FLD", BBOX_FILE, f"{len(boxes):,} boxes", expected)


def _present_under(root: Path, relpaths: Sequence[str]) -> Callable[[str], bool]:
    """A lookup `relpath -> exists under root`, one os.scandir per parent folder."""
    listing: dict[str, set[str]] = {}
    for rel in relpaths:
        parent = rel.rpartition("/")[0]
        if parent not in listing:
            listing[parent] = _names(root / parent) or set()

    def present(rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        return name in listing.get(parent, set())

    return present


# ----------------------------------------------------------------------------- ImageNet


def _check_imagenet(ctx: _Ctx) -> list[Check]:
    """colorization: <wnid>/ class folders (1,000) and images (50,000), a flat unsorted
    folder recognised (-> `data prepare imagenet-val`), a sample of images opened. Quick
    mode counts the folders only and looks into the sampled ones."""
    if ctx.cfg.task.options.get("source", "folder") == "hub":
        return [Check("ImageNet val", "hub dataset", "not checked", "-", OK)]
    folders = _subfolders(ctx.root)
    if folders is None:
        return [_root_absent(ctx, "ImageNet val", FIX_IMAGENET)]
    if not folders:
        flat = _names(ctx.root, ".jpeg") or set()
        problem = "holds no class folders" + (
            f" but {len(flat):,} images directly (not sorted into <wnid>/)" if flat else ""
        )
        return [
            Check(
                "ImageNet val",
                "<wnid>/ folders",
                "0",
                ctx.label(ctx.expected(IMAGENET_CLASSES, lambda p: p["classes"])),
                MISSING,
                problem=problem,
                fix=ctx.fix(FIX_IMAGENET),
            )
        ]
    rows = [
        _count(
            ctx,
            "ImageNet val",
            "<wnid>/ folders",
            len(folders),
            IMAGENET_CLASSES,
            lambda p: p["classes"],
            FIX_IMAGENET,
            "folders",
        )
    ]
    looked = sample(folders, ctx.sample) if ctx.quick else folders
    images = {f: sorted(n for n in _names(ctx.root / f) or () if _is_image_name(n)) for f in looked}
    if not ctx.quick:
        total = sum(len(v) for v in images.values())
        rows.append(
            _count(
                ctx,
                "ImageNet val",
                "images",
                total,
                IMAGENET_VAL_IMAGES,
                lambda p: p["classes"] * p["per_class"],
                FIX_IMAGENET,
                "images",
            )
        )
    elif not any(images.values()):
        rows.append(
            Check(
                "ImageNet val",
                "images",
                "0 in the sampled folders",
                "some",
                MISSING,
                problem="the sampled class folders hold no images",
                fix=ctx.fix(FIX_IMAGENET),
            )
        )
    candidates = [f"{f}/{name}" for f, names in images.items() for name in names]
    problems, opened = [], 0
    for rel in sample(candidates, ctx.sample):
        opened += 1
        photo, why = _open(ctx.root / rel)
        if photo is None:
            problems.append(_bad_file("ImageNet val", ctx.root / rel, why, ctx.fix(FIX_IMAGENET)))
    return rows + _sample_rows("ImageNet val", opened, problems)


def _is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES
