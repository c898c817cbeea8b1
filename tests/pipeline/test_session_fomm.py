"""A session driving a tiny FOMM (random weights) in relative and absolute motion (issue 11 item 10)."""

from __future__ import annotations

import numpy as np
import pytest
from live_fakes import Fakes, ListSource, coded_frame

torch = pytest.importorskip("torch")

from fomm_helpers import randomize, tiny_params  # noqa: E402

from avatarify_app.config import LiveOptions, MotionOptions  # noqa: E402
from avatarify_app.engines.fomm.engine import FommEngine  # noqa: E402
from avatarify_app.models import build_models, load_model_params  # noqa: E402
from avatarify_app.pipeline import Session  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def models():
    # One intra-op thread: on a busy 2-core machine two threads make these 64 px models ~40x
    # slower (measured 1.1 s against 0.027 s a frame); restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    kp_detector, generator = build_models(load_model_params(tiny_params()))
    yield randomize(kp_detector, 3), randomize(generator, 4)
    torch.set_num_threads(threads)


def textured(i: int) -> np.ndarray:
    """A coded frame (the fake tracker reads its centre) with texture for the keypoints."""
    frame = coded_frame(i, (SIZE, SIZE))
    rng = np.random.default_rng(i)
    frame[: SIZE // 3] = rng.integers(0, 256, (SIZE // 3, SIZE, 3), dtype=np.uint8)
    return frame


def run(models, relative: bool, n: int = 8, switch_to: bool | None = None):
    wiring = Fakes(coded=True).wiring()
    engines = []

    def engine_factory(config, motion):
        engines.append(FommEngine(*models, backend="torch", size=SIZE, options=motion, fuse=False))
        return engines[-1]

    wiring["engine_factory"] = engine_factory
    options = LiveOptions(motion=MotionOptions(relative=relative, adapt_scale=False))
    session = Session(ListSource([textured(i) for i in range(n)]), avatar=textured(500), options=options, **wiring)
    references, statuses, errors = [], [], []
    session.add_reference_observer(references.append)
    session.add_frame_observer(lambda e: statuses.append(e.status))
    session.add_error_observer(errors.append)
    if switch_to is not None:
        session.add_frame_observer(lambda e: e.index == n // 2 and session.update_options(
            LiveOptions(motion=MotionOptions(relative=switch_to, adapt_scale=False))))
    session.start()
    try:
        assert session.wait_ended(60)
    finally:
        session.close()
    assert not errors, [e.message for e in errors]
    return references, statuses, engines[0]


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_fomm_announces_one_reference_in_either_mode(models, relative):
    references, statuses, engine = run(models, relative)
    assert statuses == ["ok"] * 8
    # Before the fix absolute motion announced a "first_frame" reference on every frame (8).
    assert [r.reason for r in references] == ["first_frame"]
    assert engine.has_reference()


def test_switching_to_relative_motion_keeps_the_reference(models):
    references, statuses, _ = run(models, False, switch_to=True)
    assert statuses == ["ok"] * 8 and [r.reason for r in references] == ["first_frame"]


def test_absolute_motion_ignores_the_reference(models):
    engine = FommEngine(*models, backend="torch", size=SIZE, options=MotionOptions(False, False), fuse=False)
    engine.set_source(textured(500))
    engine.predict(textured(0))
    assert engine.has_reference()  # the protocol: the first predicted frame becomes the reference
    out = engine.predict(textured(3))
    engine.set_reference(textured(7))
    assert np.array_equal(engine.predict(textured(3)), out)
    engine.set_options(MotionOptions(True, False))
    assert not np.array_equal(engine.predict(textured(3)), out)  # relative motion uses it
