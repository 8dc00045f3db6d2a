"""SegGPT as a method (methods/seggpt.py), on the tiny random model: what the model is fed
(canvases, masked half, prompts per episode), how its output becomes a picture, options,
determinism, weights identity and the one-line load errors. CPU, no network."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sdvicl_bench.config import MethodConfig
from sdvicl_bench.errors import ConfigError, ModelError
from sdvicl_bench.methods import seggpt
from sdvicl_bench.sampler.pipeline import Episode
from tests.helpers import episode

MEAN = np.array([0.485, 0.456, 0.406])  # ImageNet's, written out: the reference is by hand
STD = np.array([0.229, 0.224, 0.225])
STATS = (tuple(MEAN), tuple(STD))
SIDE = seggpt.TINY_SIDE


@pytest.fixture(scope="module")
def tiny():
    """The tiny method (seed 0) on the CPU, built once for the module."""
    return seggpt.build(MethodConfig(name="seggpt-tiny", device="cpu"), "fgseg")


class Spy:
    """Stands in for the model: records each forward call's arguments and output, which is
    the model's, or `pred_masks` as given (then `model` lends only its config)."""

    def __init__(self, model, pred_masks: torch.Tensor | None = None) -> None:
        self.model, self.config, self.pred_masks = model, model.config, pred_masks
        self.calls: list[dict] = []
        self.outputs: list = []

    def __call__(self, **kw):
        self.calls.append(kw)
        if self.pred_masks is None:
            out = self.model(**kw)
        else:
            out = SimpleNamespace(pred_masks=self.pred_masks)
        self.outputs.append(out)
        return out


def with_model(method, model, **options) -> seggpt.SegGpt:
    """A SegGpt sharing `method`'s processor, with `model` and `options` in place."""
    settings = seggpt.settings_of(options)
    return seggpt.SegGpt(
        method.info, model, method.processor, method.device, method.dtype, settings
    )


def cell_picture(seed: int) -> Image.Image:
    """Random RGB noise of the tiny model's cell size (no resize touches it)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))


def palette_map(seed: int) -> Image.Image:
    """A cell-sized map in three pure colours (black, red, white), like a B picture."""
    rng = np.random.default_rng(seed)
    colours = np.array([[0, 0, 0], [220, 20, 60], [255, 255, 255]], np.uint8)
    return Image.fromarray(colours[rng.integers(0, 3, (SIDE, SIDE))])


def normalised(image: Image.Image) -> torch.Tensor:
    """(3, h, w) float32: pixels / 255, minus ImageNet's mean, over its std."""
    arr = (np.asarray(image.convert("RGB"), np.float64) / 255.0 - MEAN) / STD
    return torch.from_numpy(arr).permute(2, 0, 1).float()


# ----------------------------------------------------------------------------- the inputs


def test_canvas_is_prompt_over_query_and_target_over_an_empty_cell(tiny):
    ep = Episode([cell_picture(1)], [palette_map(2)], cell_picture(3))
    seen: list[torch.Tensor] = []
    patches = tiny.model.model.embeddings.patch_embeddings
    hook = patches.register_forward_pre_hook(lambda _m, args: seen.append(args[0].clone()))
    spy = Spy(tiny.model)
    try:
        with_model(tiny, spy).run([ep])
    finally:
        hook.remove()
    a, b, c = (normalised(p) for p in (ep.prompts[0], ep.targets[0], ep.query))
    image_canvas, target_canvas = seen  # the two canvases, in this order
    torch.testing.assert_close(image_canvas[0], torch.cat([a, c], dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(target_canvas[0, :, :SIDE], b, atol=1e-5, rtol=0)
    # the target canvas's lower half is masked: exactly the lower half's patches
    rows, cols = 2 * SIDE // 8, SIDE // 8
    expected = torch.zeros(rows, cols, dtype=torch.bool)
    expected[rows // 2 :] = True
    assert torch.equal(spy.calls[0]["bool_masked_pos"].cpu(), expected.reshape(1, -1))
    # ... so whatever the model's lower half holds, it is an empty cell to the model
    embed = tiny.model.model.embeddings
    with torch.inference_mode():
        mask = spy.calls[0]["bool_masked_pos"]
        as_fed = embed(image_canvas, target_canvas, bool_masked_pos=mask)
        blank = torch.cat([b, torch.zeros_like(b)], dim=1)[None]
        empty = embed(image_canvas, blank, bool_masked_pos=mask)
    torch.testing.assert_close(as_fed, empty, atol=1e-6, rtol=0)


def test_pictures_reach_the_cell_side_as_the_episode_says(tiny):
    ep = episode(1, target_resample="area")  # 64 px pictures (2 cells); targets by BOX
    assert ep.query.size == (2 * SIDE, 2 * SIDE)
    spy = Spy(tiny.model)
    with_model(tiny, spy).run([ep])
    fed = spy.calls[0]
    cell = (SIDE, SIDE)
    expect = {
        "pixel_values": normalised(ep.query.resize(cell, Image.Resampling.BICUBIC)),
        "prompt_pixel_values": normalised(ep.prompts[0].resize(cell, Image.Resampling.BICUBIC)),
        "prompt_masks": normalised(ep.targets[0].resize(cell, Image.Resampling.BOX)),
    }
    for key, want in expect.items():
        torch.testing.assert_close(fed[key][0], want, atol=1e-4, rtol=0, msg=key)
    nearest = normalised(ep.targets[0].resize(cell, Image.Resampling.NEAREST))
    assert not torch.allclose(fed["prompt_masks"][0], nearest, atol=1e-3)


# ----------------------------------------------------------------------------- the output


def test_prediction_is_the_un_normalised_lower_half(tiny):
    rng = np.random.default_rng(7)
    want = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    lower = normalised(Image.fromarray(want))  # exactly k / 255 once un-normalised
    lower[:, :4, :4] = 5.0  # far above 1: clipped to 255
    lower[:, -4:, -4:] = -5.0  # far below 0: clipped to 0
    want[:4, :4], want[-4:, -4:] = 255, 0
    upper = torch.full((3, SIDE, SIDE), 0.3)  # the prompt's half: must not show
    spy = Spy(tiny.model, pred_masks=torch.cat([upper, lower], dim=1)[None])
    method = with_model(tiny, spy)
    out = method.run([Episode([cell_picture(1)], [palette_map(2)], cell_picture(3))])
    assert out[0].picture.mode == "RGB" and out[0].picture.size == (SIDE, SIDE)
    np.testing.assert_array_equal(np.asarray(out[0].picture), want)
    assert method.calls == 1 and spy.calls[0]["feature_ensemble"] is False


def test_two_prompts_pass_the_query_twice_with_the_feature_ensemble(tiny):
    ep = episode(2)
    spy = Spy(tiny.model)
    method = with_model(tiny, spy)
    picture_out = method.run([ep])[0].picture
    fed = spy.calls[0]
    assert method.calls == 1 and len(spy.calls) == 1
    assert fed["feature_ensemble"] is True
    assert fed["pixel_values"].shape[0] == 2
    assert torch.equal(fed["pixel_values"][0], fed["pixel_values"][1])  # C twice
    assert not torch.equal(fed["prompt_pixel_values"][0], fed["prompt_pixel_values"][1])
    assert not torch.equal(fed["prompt_masks"][0], fed["prompt_masks"][1])
    # the answer is the first row's lower half, as the official inference takes it
    first = seggpt.query_picture(spy.outputs[0].pred_masks[0], method.mean, method.std)
    assert np.array_equal(np.asarray(picture_out), np.asarray(first))


def test_ensemble_off_averages_the_predictions_and_options_reach_forward(tiny):
    ep = episode(2)
    spy = Spy(tiny.model)
    method = with_model(tiny, spy, feature_ensemble=False, embedding_type="semantic")
    out = method.run([ep])[0].picture
    assert spy.calls[0]["feature_ensemble"] is False
    assert spy.calls[0]["embedding_type"] == "semantic"
    mean = spy.outputs[0].pred_masks.mean(dim=0)
    assert np.array_equal(np.asarray(out), np.asarray(seggpt.query_picture(mean, *STATS)))
    instance = with_model(tiny, tiny.model, feature_ensemble=False).run([ep])[0].picture
    assert not np.array_equal(np.asarray(out), np.asarray(instance))  # the type token counts


@pytest.mark.parametrize(
    "options",
    [{"embedding_type": "panoptic"}, {"feature_ensemble": "yes"}],
)
def test_bad_option_values_are_one_line_config_errors(options):
    with pytest.raises(ConfigError) as err:
        seggpt.build(MethodConfig(name="seggpt", path="/nonexistent", options=options))
    assert "\n" not in str(err.value) and "Fix:" in str(err.value)


# ----------------------------------------------------------------------------- identity


def test_same_episode_same_picture_and_the_seed_names_the_weights(tiny):
    ep = episode(1, seed=5)
    state = torch.random.get_rng_state()
    again = seggpt.build(MethodConfig(name="seggpt-tiny", device="cpu"))
    other = seggpt.build(MethodConfig(name="seggpt-tiny", device="cpu", seed=1))
    assert torch.equal(state, torch.random.get_rng_state())  # private RNG
    first = np.asarray(tiny.run([ep])[0].picture)
    assert np.array_equal(first, np.asarray(tiny.run([ep])[0].picture))
    assert np.array_equal(first, np.asarray(again.run([ep])[0].picture))
    assert not np.array_equal(first, np.asarray(other.run([ep])[0].picture))


def test_bfloat16_inputs_follow_the_weights(tiny):
    cfg = MethodConfig(name="seggpt-tiny", device="cpu", dtype="bfloat16")
    half = seggpt.build(cfg)
    assert next(half.model.parameters()).dtype == torch.bfloat16
    ep = episode(2)  # every input, the prompt masks too, must reach bf16 convolutions
    got = np.asarray(half.run([ep])[0].picture).astype(int)
    full = np.asarray(tiny.run([ep])[0].picture).astype(int)
    assert np.abs(got - full).max() <= 8


def test_output_side_without_loading(tiny):
    assert seggpt.output_side(MethodConfig(name="seggpt", path="/nonexistent")) == 448
    assert seggpt.output_side(MethodConfig(name="seggpt-tiny")) == SIDE
    assert tiny.run([episode(1)])[0].picture.size == (SIDE, SIDE)


def test_weights_identity(tmp_path):
    hub = seggpt.weights_identity(MethodConfig(name="seggpt"))
    assert hub == {
        "name": "seggpt",
        "source": "BAAI/seggpt-vit-large",
        "revision": seggpt.DEFAULT_REVISION,
    }
    assert re.fullmatch(r"[0-9a-f]{40}", seggpt.DEFAULT_REVISION)
    pinned = seggpt.weights_identity(MethodConfig(name="seggpt", revision="abc"))
    assert pinned["revision"] == "abc"
    tiny_id = seggpt.weights_identity(MethodConfig(name="seggpt-tiny", seed=3))
    assert tiny_id == {"name": "seggpt-tiny", "seed": 3}
    (tmp_path / "config.json").write_text("{}")
    folder = seggpt.weights_identity(MethodConfig(name="seggpt", path=str(tmp_path)))
    assert set(folder) == {"name", "folder"}
    with pytest.raises(ModelError):
        seggpt.weights_identity(MethodConfig(name="seggpt", path=str(tmp_path / "missing")))


# ----------------------------------------------------------------------------- loading


def test_a_saved_folder_loads_as_seggpt(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    tiny.processor.save_pretrained(tmp_path)
    loaded = seggpt.build(MethodConfig(name="seggpt", path=str(tmp_path), device="cpu"))
    assert loaded.info.title == "SegGPT"
    ep = episode(1)
    assert np.array_equal(
        np.asarray(loaded.run([ep])[0].picture), np.asarray(tiny.run([ep])[0].picture)
    )


def test_missing_weights_are_one_line_model_errors(tmp_path, monkeypatch):
    cases = {
        "missing folder": MethodConfig(name="seggpt", path=str(tmp_path / "nope")),
        "empty folder": MethodConfig(name="seggpt", path=str(tmp_path)),
        "offline hub": MethodConfig(name="seggpt", hub_id="sdvicl-tests/no-such-seggpt"),
    }
    monkeypatch.setattr(seggpt, "_hub_reachable", lambda: False)  # never the network
    for case, cfg in cases.items():
        with pytest.raises(ModelError) as err:
            seggpt.build(cfg)
        line = str(err.value)
        assert "\n" not in line and "Fix:" in line, case
        assert "method.path" in line, case
    assert "sdvicl-tests/no-such-seggpt" in line


def test_info_and_options_cover_both_names():
    assert set(seggpt.INFO) == {"seggpt", "seggpt-tiny"}
    real, tiny_info = seggpt.INFO["seggpt"], seggpt.INFO["seggpt-tiny"]
    assert (real.kind, real.trained_for, real.title) == ("hub", ("fgseg", "semseg"), "SegGPT")
    assert "estimate" in real.estimate_basis and real.gpu_seconds_per_episode > 0
    assert (tiny_info.kind, tiny_info.trained_for) == ("random", ())
    assert set(seggpt.OPTIONS) == {"feature_ensemble", "embedding_type"}
