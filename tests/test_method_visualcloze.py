"""VisualCloze as a method: the grid, prompt and generator handed to diffusers' pipeline, the
picture taken from its output, the tiny random pipeline end to end, weights identities,
load errors and the task prompts (CPU, tiny model only, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.pipelines.flux.pipeline_output import FluxPipelineOutput
from PIL import Image

from sdvicl_bench.config import MethodConfig
from sdvicl_bench.errors import ConfigError, ModelError
from sdvicl_bench.methods import visualcloze as vc
from sdvicl_bench.sampler.pipeline import Episode
from tests.helpers import SIZE, episode, picture

TINY = MethodConfig(name="visualcloze-tiny", device="cpu", seed=0)
HUB = MethodConfig(name="visualcloze", device="cpu")


@pytest.fixture(scope="module")
def method():
    """The tiny random VisualCloze (generation only) answering edges, on the CPU."""
    return vc.build(TINY, "edges")


@pytest.fixture()
def spy(method, monkeypatch):
    """Replace the pipeline's __call__: record its keyword arguments, answer `spy.answer`."""
    calls: list[dict] = []

    def fake_call(self, **kwargs):
        calls.append(kwargs)
        return FluxPipelineOutput(images=[[fake_call.answer]])

    fake_call.answer = Image.new("L", (5, 7), 200)
    fake_call.calls = calls
    monkeypatch.setattr(type(method.pipe), "__call__", fake_call)
    return fake_call


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# ----------------------------------------------------------------------------- the call


def test_pipeline_gets_rows_in_order_the_task_prompt_and_the_episode_seed(method, spy):
    ep = episode(n=2, seed=1234)
    ep.prompts[0] = ep.prompts[0].convert("L")  # a grey A: handed over as RGB
    method.run([ep])
    (kwargs,) = spy.calls
    grid = kwargs["image"]
    assert len(grid) == 3 and all(len(row) == 2 for row in grid)
    assert grid[0][0].mode == "RGB"
    assert np.array_equal(pixels(grid[0][0]), pixels(ep.prompts[0]))
    assert grid[0][1] is ep.targets[0]
    assert grid[1][0] is ep.prompts[1] and grid[1][1] is ep.targets[1]
    assert grid[2][0] is ep.query and grid[2][1] is None
    assert kwargs["task_prompt"] == vc.TASK_PROMPTS["edges"]
    assert kwargs["content_prompt"] is None
    assert kwargs["num_inference_steps"] == vc.TINY_SETTINGS.steps
    assert kwargs["guidance_scale"] == vc.TINY_SETTINGS.guidance_scale
    generator = kwargs["generator"]
    assert generator.initial_seed() == 1234
    expected = torch.randn(4, generator=torch.Generator().manual_seed(1234))
    assert torch.equal(torch.randn(4, generator=generator), expected)
    assert "upsampling_strength" not in kwargs  # generation alone


def test_answer_is_the_query_rows_target_in_rgb(method, spy):
    (result,) = method.run([episode(n=1, seed=3)])
    assert result.picture.mode == "RGB" and result.picture.size == (5, 7)
    assert np.array_equal(pixels(result.picture), pixels(spy.answer))


def test_every_episode_gets_its_own_call_and_seed(method, spy):
    results = method.run([episode(n=1, seed=5), episode(n=3, seed=6, offset=1)])
    assert len(results) == 2
    assert [len(c["image"]) for c in spy.calls] == [2, 4]
    assert [c["generator"].initial_seed() for c in spy.calls] == [5, 6]


def test_upsampling_asks_for_the_query_size_and_strength():
    calls = []

    class FakePipe:
        transformer = torch.nn.Identity()
        upsampling_pipe = type("Stage", (), {"vae_scale_factor": 8})()

        def __call__(self, **kwargs):
            calls.append(kwargs)
            return FluxPipelineOutput(images=[[Image.new("RGB", (3, 3))]])

    opts = vc.Settings(upsampling=True, upsampling_strength=0.25)
    method = vc.VisualCloze(vc.INFO["visualcloze"], FakePipe(), opts, "p", torch.device("cpu"))
    query = Image.new("RGB", (500, 333))
    method.run([Episode([picture(1)], [picture(2)], query, seed=0)])
    assert calls[0]["upsampling_width"] == 496 and calls[0]["upsampling_height"] == 320
    assert calls[0]["upsampling_strength"] == 0.25
    assert vc.upsampling_size(Image.new("RGB", (4000, 2000)), 16) == (1440, 720)  # <= 1024^2


# ----------------------------------------------------------------------------- end to end


def test_tiny_pipeline_end_to_end_is_seeded_by_the_episode(method):
    before = method.calls
    one, two, again, other = method.run(
        [episode(n=1, seed=7), episode(n=2, seed=7), episode(n=1, seed=7), episode(n=1, seed=8)]
    )
    side = vc.output_side(TINY)
    for result in (one, two, again, other):
        assert result.picture.mode == "RGB" and result.picture.size == (side, side)
    assert method.calls - before == 4 * vc.TINY_SETTINGS.steps  # transformer passes
    assert np.array_equal(pixels(one.picture), pixels(again.picture))
    assert not np.array_equal(pixels(one.picture), pixels(other.picture))
    assert not np.array_equal(pixels(one.picture), pixels(two.picture))


def test_a_non_square_query_keeps_its_aspect_at_the_cells_area(method):
    ep = episode(n=1, seed=0)
    ep.query = ep.query.resize((40, 48))  # pictures at any size; SIZE x SIZE prompts
    (result,) = method.run([ep])
    assert SIZE == 64 and result.picture.size == (28, 34)  # area ~32^2, sides even


# ----------------------------------------------------------------------------- identities


def test_output_side_is_the_resolution_option():
    assert vc.output_side(TINY) == 32
    assert vc.output_side(HUB) == 384
    assert vc.output_side(MethodConfig(name="visualcloze", options={"resolution": 512})) == 512


def test_weights_identity_names_hub_revision_or_tiny_seed(tmp_path):
    assert vc.weights_identity(HUB) == {
        "name": "visualcloze",
        "source": vc.DEFAULT_HUB_ID,
        "revision": vc.DEFAULT_REVISION,
    }
    pinned = MethodConfig(name="visualcloze", hub_id="me/vc", revision="abc123")
    assert vc.weights_identity(pinned)["source"] == "me/vc"
    assert vc.weights_identity(pinned)["revision"] == "abc123"
    tiny = MethodConfig(name="visualcloze-tiny", seed=7)
    assert vc.weights_identity(tiny) == {"name": "visualcloze-tiny", "seed": 7}
    (tmp_path / "weights.bin").write_bytes(b"x")
    folder = vc.weights_identity(MethodConfig(name="visualcloze", path=str(tmp_path)))
    assert set(folder) == {"name", "folder"}
    with pytest.raises(ModelError):
        vc.weights_identity(MethodConfig(name="visualcloze", path=str(tmp_path / "missing")))


def test_a_missing_folder_is_a_one_line_model_error(tmp_path):
    cfg = MethodConfig(name="visualcloze", device="cpu", path=str(tmp_path / "nope"))
    with pytest.raises(ModelError) as err:
        vc.build(cfg, "fgseg")
    message = str(err.value)
    assert "\n" not in message and "method.path" in message and "Fix:" in message


def test_options_are_checked_and_filled():
    assert vc.settings(HUB).steps == 30 and vc.settings(HUB).guidance_scale == 30.0
    assert vc.settings(HUB).upsampling is False
    assert set(vc.OPTIONS) == {f for f in vc.Settings.__dataclass_fields__} - {
        "max_sequence_length"
    }
    with pytest.raises(ConfigError, match=r"method\.options\.stepz"):
        vc.settings(MethodConfig(name="visualcloze", options={"stepz": 3}))
    with pytest.raises(ConfigError, match="task_prompt"):
        vc.task_prompt("depth", vc.settings(HUB))
    own = vc.settings(MethodConfig(name="visualcloze", options={"task_prompt": "mine"}))
    assert vc.task_prompt("depth", own) == "mine" == vc.task_prompt("edges", own)


# ----------------------------------------------------------------------------- registry


def test_every_task_has_a_visualcloze_prompt():
    assert set(vc.TASK_PROMPTS) == set(vc.TASKS)
    assert set(vc.TASKS) == {"fgseg", "det", "semseg", "keypoints", "edges", "colorization"}
    for prompt in vc.TASK_PROMPTS.values():
        assert "[IMAGE1]" in prompt and "[IMAGE2]" in prompt
    assert len(set(vc.TASK_PROMPTS.values())) == len(vc.TASKS)


def test_info_describes_both_names():
    assert {name: info.name for name, info in vc.INFO.items()} == {
        "visualcloze": "visualcloze",
        "visualcloze-tiny": "visualcloze-tiny",
    }
    hub, tiny = vc.INFO["visualcloze"], vc.INFO["visualcloze-tiny"]
    assert hub.kind == "hub" and tiny.kind == "random" and tiny.trained_for == ()
    assert set(hub.trained_for) <= set(vc.TASKS)
    assert "Non-Commercial" in hub.licence and "estimate" in hub.estimate_basis


def test_tiny_pipeline_with_upsampling_answers_at_the_querys_size():
    cfg = MethodConfig(
        name="visualcloze-tiny",
        device="cpu",
        options={"upsampling": True, "upsampling_strength": 1.0},
    )
    method = vc.build(cfg, "colorization")
    ep = episode(n=1, seed=2)
    ep.query = ep.query.resize((40, 48))
    (result,) = method.run([ep])
    assert result.picture.mode == "RGB" and result.picture.size == (40, 48)
    assert method.calls == 2 * vc.TINY_SETTINGS.steps  # generation, then upsampling
