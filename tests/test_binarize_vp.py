"""`task.options.binarize=vp` (Visual Prompting's uint8 `round_image`) for fgseg and det, and
the fgseg mask resize by pixel centres, against reimplementations of the references' code.

The references: VP's `round_image` (amirbar/visual_prompting, evaluate/reasoning_dataloader.py)
run on `np.uint8` canvases by evaluate/evaluate_segmentation.py, written here twice straight
from its source (NumPy uint8 ops, and its own torch ops); VP's canvas round trip for the
label cell (ToTensor, ImageNet normalisation: NumPy float64 for fgseg, DETR's float32
`Normalize` for det; then `clip((x * std + mean) * 255).int()`) in torch; torch's
`nearest-exact` interpolation for the resize kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from sdvicl_bench.cli import app
from sdvicl_bench.errors import ConfigError
from sdvicl_bench.metrics.iou import foreground_iou
from sdvicl_bench.protocols.pascal import cell_mask, cell_picture
from sdvicl_bench.report.reference import references_for
from sdvicl_bench.report.tables import protocol_differences
from sdvicl_bench.tasks import det, fgseg

runner = CliRunner()

WHITE, BLACK = (255, 255, 255), (0, 0, 0)
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


# ----------------------------------------------------------------------------- references


def round_image_numpy(img: np.ndarray, options=(WHITE, BLACK)) -> np.ndarray:
    """VP's round_image on a uint8 (h, w, 3) array with NumPy's uint8 arithmetic: the
    difference to each option and its square wrap, the mean over channels in float, argmin
    (the first option on ties). -> uint8 (h, w, 3), each pixel one of ``options``."""
    img = np.asarray(img, dtype=np.uint8)
    opts = np.array(options, dtype=np.uint8).T[None, None]  # (1, 1, 3, n)
    nn = ((img[..., None] - opts) ** 2).astype(np.float32).mean(axis=2)
    return np.array(options, dtype=np.uint8)[np.argmin(nn, axis=-1)]


def round_image_torch(img: np.ndarray, options=(WHITE, BLACK)) -> np.ndarray:
    """VP's round_image as its source writes it, in torch (t = 0, outputs = options)."""
    img = torch.tensor(img)
    options = torch.tensor(options)
    opts = options.view(len(options), 1, 1, 3).permute(1, 2, 3, 0).to(img)
    nn = ((img.unsqueeze(-1) - opts) ** 2).float().mean(dim=2)
    return options[torch.argmin(nn, dim=-1)].numpy().astype(np.uint8)


def is_white(rounded: np.ndarray) -> np.ndarray:
    """VP's calculate_metric: a pixel is foreground where it equals WHITE in all channels."""
    return (rounded == np.array(WHITE, dtype=np.uint8)).all(axis=2)


def vp_label_canvas(grey: np.ndarray, task: str) -> np.ndarray:
    """uint8 (h, w) grey cell -> uint8 (h, w, 3) as VP's canvas holds it before rounding: the
    ToTensor'd cell normalised (fgseg: the float32 canvas minus NumPy float64 mean / std, as
    evaluate_segmentation.py; det: DETR's Normalize, float32 tensors) and read back as
    `torch.clip((canvas * std + mean) * 255, 0, 255).int()` with NumPy float64 mean / std."""
    cell = torch.tensor(np.asarray(grey, dtype=np.uint8)).to(torch.float32).div(255)
    cell = cell.unsqueeze(0).expand(3, *grey.shape).contiguous()
    if task == "fgseg":
        cell = (cell - MEAN[:, None, None]) / STD[:, None, None]
    else:
        mean = torch.as_tensor(MEAN, dtype=torch.float32)[:, None, None]
        std = torch.as_tensor(STD, dtype=torch.float32)[:, None, None]
        cell = cell.sub(mean).div(std)
    hwc = torch.einsum("chw->hwc", cell)
    return np.uint8(torch.clip((hwc * STD + MEAN) * 255, 0, 255).int().numpy())


def greys(levels) -> np.ndarray:
    """uint8 (1, n, 3): one grey pixel per level."""
    g = np.asarray(levels, dtype=np.uint8)[None, :, None]
    return np.repeat(g, 3, axis=2)


# ----------------------------------------------------------------------------- the rule


def test_hand_cases() -> None:
    # grey 200: to white (200 - 255) % 256 = 201, 201^2 % 256 = 209; to black 200^2 % 256 = 64
    # grey 15: to white 16^2 % 256 = 0; to black 225. 127 -> white (0 vs 1), 128 -> black.
    picture = greys([200, 15, 127, 128, 0, 255])
    np.testing.assert_array_equal(
        fgseg.binarize(picture, "vp"), [[False, True, True, False, False, True]]
    )
    np.testing.assert_array_equal(
        fgseg.binarize(picture, "nearest"), [[True, False, False, True, False, True]]
    )
    # a colour: (200, 15, 0): white 209 + 0 + 1 = 210, black 64 + 225 + 0 = 289 -> white
    colour = np.array([[[200, 15, 0]]], dtype=np.uint8)
    assert fgseg.binarize(colour, "vp")[0, 0] and not fgseg.binarize(colour, "nearest")[0, 0]
    assert fgseg.binarize(Image.fromarray(picture), "vp").tolist() == [
        [False, True, True, False, False, True]
    ]


def test_white_and_black_never_tie() -> None:
    """WHITE wins ties (argmin's first index), but with WHITE and BLACK a tie cannot happen:
    per channel (g + 1)^2 and g^2 differ in parity, so the sums of three channels always do.
    Checked over every (R, G, B) through the sums of the per-channel differences."""
    g = np.arange(256)
    diff = ((g + 1) ** 2 % 256) - (g**2 % 256)
    assert np.all(diff % 2 == 1)
    values = np.unique(diff)
    sums = np.add.outer(np.add.outer(values, values), values)
    assert not (sums == 0).any()
    # and where the squares are equal in one channel the other channels decide
    for rgb in ([15, 200, 0], [127, 128, 255], [0, 255, 128]):
        picture = np.array([[rgb]], dtype=np.uint8)
        assert fgseg.binarize(picture, "vp")[0, 0] == is_white(round_image_torch(picture))[0, 0]


def test_every_grey_level_as_the_references_round_it() -> None:
    picture = greys(range(256))
    vp = fgseg.binarize(picture, "vp")
    np.testing.assert_array_equal(vp, is_white(round_image_numpy(picture)))
    np.testing.assert_array_equal(vp, is_white(round_image_torch(picture)))
    # the rules disagree on half of the 256 greys: 64 below 128 are white, 64 above black
    nearest = fgseg.binarize(picture, "nearest")
    assert int((vp != nearest).sum()) == 128
    assert int(vp[0, :128].sum()) == 64 and int((~vp[0, 128:]).sum()) == 64


@pytest.mark.parametrize("seed", range(4))
def test_random_pictures_as_the_references_round_them(seed: int) -> None:
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    vp = fgseg.binarize(picture, "vp")
    np.testing.assert_array_equal(vp, is_white(round_image_numpy(picture)))
    np.testing.assert_array_equal(vp, is_white(round_image_torch(picture)))
    assert np.mean(vp != fgseg.binarize(picture, "nearest")) > 0.3  # the rules differ here


def test_unknown_rule_is_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        fgseg.binarize(greys([0]), "otsu")
    assert "\n" not in str(err.value) and "task.options.binarize=vp" in str(err.value)


def test_unknown_value_on_the_command_line_is_one_line_and_exit_2(workdir) -> None:
    for task in ("fgseg", "det"):
        result = runner.invoke(
            app, ["run", f"task={task}", "debug=smoke", "task.options.binarize=otsu"]
        )
        assert result.exit_code == 2, result.output
        said = [x for x in result.output.strip().splitlines() if x.strip()]
        assert len(said) == 1 and "binarize" in said[0] and "vp" in said[0], result.output


# ----------------------------------------------------------------------------- decoders


def test_fgseg_decode_with_vp() -> None:
    rng = np.random.default_rng(5)
    picture = rng.choice(np.array([0, 15, 120, 130, 200, 255], dtype=np.uint8), size=(40, 30))
    picture = np.repeat(picture[:, :, None], 3, axis=2)
    want = is_white(round_image_numpy(picture))
    np.testing.assert_array_equal(fgseg.decode(picture, (30, 40), binarize="vp"), want)
    assert (fgseg.decode(picture, (30, 40)) != want).any()  # nearest, the default, differs
    # resized after rounding (VP rounds the canvas it scores; the cell is its resolution)
    big = fgseg.decode(picture, (75, 100), binarize="vp")
    np.testing.assert_array_equal(big, fgseg.resize_mask(want, (75, 100)))


def test_det_decode_with_vp_picks_the_other_component() -> None:
    """A large grey-200 square (white by mean RGB, black by VP) and a small grey-15 one
    (black by mean RGB, white by VP): each rule boxes its own."""
    picture = np.zeros((50, 60, 3), dtype=np.uint8)
    picture[5:30, 5:35] = 200
    picture[38:45, 44:52] = 15
    assert det.decode_box(picture) == (5, 5, 34, 29)
    assert det.decode_box(picture, "vp") == (44, 38, 51, 44)
    white = is_white(round_image_numpy(picture))
    ys, xs = np.nonzero(white)
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (44, 38, 51, 44)
    out = det.decode(picture, (60, 50), binarize="vp")
    np.testing.assert_array_equal(out, det.box_to_mask((44, 38, 51, 44), (60, 50)))


# ----------------------------------------------------------------------------- label cell


def _disc(h: int, w: int) -> np.ndarray:
    """bool (h, w): an off-centre ellipse and a thin bar (many edge greys once resized)."""
    y, x = np.mgrid[:h, :w]
    mask = ((x - 0.4 * w) / (0.3 * w)) ** 2 + ((y - 0.55 * h) / (0.35 * h)) ** 2 < 1
    mask[int(0.1 * h) : int(0.1 * h) + 3, int(0.6 * w) : int(0.95 * w)] = True
    return mask


@pytest.mark.parametrize(
    ("task", "resample", "normalize"),
    [
        ("fgseg", Image.Resampling.BICUBIC, np.float64),
        ("det", Image.Resampling.BILINEAR, np.float32),
    ],
)
def test_label_cell_as_vp_rounds_it(task, resample, normalize) -> None:
    mask = _disc(333, 500)
    grey = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).resize((111, 111), resample)
    grey = np.asarray(grey)
    want = is_white(round_image_numpy(vp_label_canvas(grey, task)))
    got = cell_mask(mask, 111, resample, "vp", normalize)
    np.testing.assert_array_equal(got, want)
    assert (got != cell_mask(mask, 111, resample)).any()  # nearest (>= 128) differs here
    levels = fgseg.vp_canvas_levels(normalize)
    np.testing.assert_array_equal(levels[grey], vp_label_canvas(grey, task))


def test_canvas_levels_match_torch_for_every_grey() -> None:
    every = np.arange(256, dtype=np.uint8)[None, :]
    np.testing.assert_array_equal(
        fgseg.vp_canvas_levels(np.float64)[every], vp_label_canvas(every, "fgseg")
    )
    det_levels = vp_label_canvas(every, "det")
    np.testing.assert_array_equal(fgseg.vp_canvas_levels(np.float32)[every], det_levels)
    # fgseg's float64 round trip keeps every level; det's float32 one lowers many by one
    assert (vp_label_canvas(every, "fgseg")[0] == np.arange(256)[:, None]).all()
    lowered = (det_levels[0] != np.arange(256)[:, None]).sum(axis=0)
    assert lowered.tolist() == [174, 53, 23]


# ----------------------------------------------------------------------------- resize kernel


def nearest_exact_torch(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """torch's F.interpolate(mode="nearest-exact") of a bool mask to (W, H)."""
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return F.interpolate(t, size=(size[1], size[0]), mode="nearest-exact")[0, 0].numpy() > 0.5


@pytest.mark.parametrize(
    ("small", "size"),
    [((16, 16), (60, 44)), ((64, 64), (50, 37)), ((64, 64), (96, 80)), ((512, 512), (334, 375))],
)
def test_resize_kernel_is_nearest_by_pixel_centres(small, size) -> None:
    """At these sizes a destination centre falls exactly on a source edge, where PIL's
    fixed-point NEAREST takes the pixel before; torch's nearest-exact and the exact rule
    agree."""
    rng = np.random.default_rng(sum(small) + sum(size))
    mask = rng.random((small[1], small[0])) < 0.5
    out = fgseg.resize_mask(mask, size)
    np.testing.assert_array_equal(out, nearest_exact_torch(mask, size))
    rows = (2 * np.arange(size[1]) + 1) * small[1] // (2 * size[1])
    cols = (2 * np.arange(size[0]) + 1) * small[0] // (2 * size[0])
    np.testing.assert_array_equal(out, mask[np.ix_(rows, cols)])
    pil = Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)
    assert (np.asarray(pil) != out).any()  # the case where PIL's ties shift a row or column


def test_resize_kernel_agrees_with_det_box_scaling() -> None:
    """fgseg's mask resize and det's box scaling share the pixel-centre rule exactly."""
    rng = np.random.default_rng(9)
    for _ in range(20):
        x0, y0 = (int(v) for v in rng.integers(0, 40, 2))
        x1, y1 = x0 + int(rng.integers(0, 24)), y0 + int(rng.integers(0, 24))
        small = det.box_to_mask((x0, y0, x1, y1), (64, 64))
        out = det.decode(det.render_gt(small), (96, 80))
        np.testing.assert_array_equal(out, fgseg.resize_mask(small, (96, 80)))


# ----------------------------------------------------------------------------- end to end


def _run(*args: str) -> Path:
    result = runner.invoke(app, ["run", *args, "debug=smoke"], env={"COLUMNS": "400"})
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    said = [x for x in result.output.splitlines() if x.startswith("Run folder: ")]
    folder = said[-1].removeprefix("Run folder: ") if said else result.stdout.splitlines()[-1]
    return Path(folder.strip())


def test_vp_reaches_the_recorded_scores(workdir) -> None:
    """A tiny fgseg run at score_size=111 with binarize=vp: every recorded IoU equals the one
    recomputed here from the saved pictures with the reference rounding, and differs from
    what the default rule would give on at least one episode."""
    run_dir = _run("task=fgseg", "task.options.score_size=111", "task.options.binarize=vp")
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["task"]["options"]["binarize"] == "vp"
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2
    differs = False
    for s in samples:
        truth = fgseg.binarize(Image.open(run_dir / s["gt"]))
        grey = Image.fromarray(np.where(truth, 255, 0).astype(np.uint8))
        grey = np.asarray(grey.resize((111, 111), Image.Resampling.BICUBIC))
        gt_cell = is_white(round_image_numpy(vp_label_canvas(grey, "fgseg")))
        pred = np.asarray(cell_picture(Image.open(run_dir / s["pred"]), 111))
        pred_cell = is_white(round_image_numpy(pred))
        assert s["scores"]["iou"] == pytest.approx(foreground_iou(pred_cell, gt_cell), abs=1e-12)
        nearest = foreground_iou(fgseg.binarize(pred), cell_mask(truth, 111))
        differs |= abs(nearest - s["scores"]["iou"]) > 1e-9
    assert differs


# ----------------------------------------------------------------------------- references


def test_reference_rows_measured_with_vps_code_name_binarize_vp() -> None:
    for task in ("fgseg", "det"):
        for row in references_for(task):
            protocol = row.get("protocol") or {}
            if row["source"].startswith("VP "):
                assert protocol.get("task.options.binarize") == "vp", row["source"]
            for path, value in protocol.items():
                if path.startswith("task.options."):
                    assert path.removeprefix("task.options.") in {"score_size", "binarize"}
                    assert value in (111, "vp"), (path, value)


def test_unsuppr_rows_match_a_vp_run_and_differ_from_a_default_one() -> None:
    row = next(r for r in references_for("fgseg") if "UnsupPR prompts" in r["source"])
    matching = {
        "task": {"options": {"score_size": 111, "binarize": "vp"}},
        "retrieval": {"name": "clip_knn", "class_filter": "none", "prompt_class": "last_listed"},
    }
    assert protocol_differences(row, {"config": matching}) == []
    default = {**matching, "task": {"options": {"score_size": 111}}}
    assert protocol_differences(row, {"config": default}) == ["binarize=vp"]
