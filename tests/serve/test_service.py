"""What one replica does, without Ray: avatars by content, engines shared by sessions, batches."""

from __future__ import annotations

import numpy as np
import pytest

from avatarify_app.config import EngineConfig, MotionOptions
from avatarify_app.engines.remote import wire
from avatarify_app.errors import NoFaceError
from avatarify_app.serve.service import ContentStore, FrameJob, Service, SessionState


class RecordingEngine:
    """A plain fake engine: output = source + (driving - reference) brightness; records calls."""

    name = "fake"
    device = "cpu (fake)"
    size = 32

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.source = self.reference = None
        self.closed = False

    def set_source(self, image, landmarks=None):
        if image.mean() < 1:
            raise NoFaceError("No face in a black picture.")
        self.source = image.astype(np.int16)
        self.calls.append("source")

    def set_reference(self, image, landmarks=None):
        self.reference = None if image is None else image.astype(np.int16)
        self.calls.append("reference" if image is not None else "clear")

    def has_reference(self):
        return self.reference is not None

    def set_options(self, options):
        self.calls.append(f"options:{options.relative}")

    def predict(self, image, landmarks=None):
        if self.reference is None:
            self.reference = image.astype(np.int16)
        self.calls.append("predict")
        shift = int(image.astype(np.int16).mean() - self.reference.mean())
        return np.clip(self.source + shift, 0, 255).astype(np.uint8)

    def debug_info(self):
        return {}

    def close(self):
        self.closed = True


@pytest.fixture
def service():
    made: list[RecordingEngine] = []

    def factory(config, motion):
        made.append(RecordingEngine())
        return made[-1]

    s = Service(EngineConfig("landmarks"), factory=factory)
    s.made = made
    yield s
    s.close()


def on_thread(service, fn, *args):
    """Run ``fn`` on the replica's inference thread (where the server runs it), after what is queued."""
    return service._pool.submit(fn, *args).result()


def flat(value: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def job(prepared, state, value: int, seq: int = 1) -> FrameJob:
    return FrameJob(prepared, state, wire.encode_image(flat(value), "png"), b"", None, "png", 90, seq)


def animate(service, prepared, state, value: int) -> np.ndarray:
    result = service.run_frames([job(prepared, state, value)])[0]
    assert result.error is None, result.error
    return wire.decode_image(result.data)


def test_the_store_drops_the_least_recently_used_by_count_and_bytes():
    store = ContentStore(max_items=2, max_bytes=100)
    store.put("a", 1, 10)
    store.put("b", 2, 10)
    assert store.get("a") == 1  # a is now the most recent
    store.put("c", 3, 10)
    assert "b" not in store and store.get("a") == 1 and store.get("c") == 3
    store.put("d", 4, 95)  # over the byte budget: the old ones go, the new one stays
    assert len(store) == 1 and store.get("d") == 4


def test_avatars_are_named_by_their_content_and_checked(service):
    avatar = service.add_avatar(wire.encode_image(flat(100), "png"))
    assert avatar.id == wire.content_id(flat(100), None)
    assert service.avatar(avatar.id) is avatar
    with pytest.raises(wire.WireError) as unknown:
        service.avatar("0" * 64)
    assert unknown.value.code == "unknown_avatar" and unknown.value.status == 404
    with pytest.raises(wire.WireError):
        service.add_avatar(wire.encode_image(np.zeros((32, 48, 3), np.uint8), "png"))  # not square
    black = service.add_avatar(wire.encode_image(flat(0), "png"))
    with pytest.raises(NoFaceError):
        on_thread(service, service.prepare, black)
    assert on_thread(service, len, service._spares) == 1  # the engine that refused it was kept, not lost


def test_sessions_sharing_an_engine_keep_their_own_reference(service):
    prepared = on_thread(service, service.prepare, service.add_avatar(wire.encode_image(flat(100), "png")))
    a, b = SessionState(), SessionState()
    assert animate(service, prepared, a, 50).mean() == 100  # a's first frame is its reference
    assert animate(service, prepared, b, 80).mean() == 100  # so is b's
    assert animate(service, prepared, a, 60).mean() == 110  # +10 from a's reference (50)
    assert animate(service, prepared, b, 70).mean() == 90  # -10 from b's (80)
    assert a.reference is not None and a.reference[0].mean() == 50  # adopted: kept for the next switch
    engine = prepared.engine
    calls = len(engine.calls)
    animate(service, prepared, b, 75)
    assert len(engine.calls) == calls + 1  # the same session again: no switching, one predict
    b.changed(reference=None)  # cleared: the next frame becomes the reference
    assert animate(service, prepared, b, 30).mean() == 100
    a.changed(motion=MotionOptions(relative=False))
    animate(service, prepared, a, 60)
    assert "options:False" in engine.calls


def test_a_bad_frame_fails_alone_and_an_unloaded_avatar_fails_its_frames(service):
    prepared = on_thread(service, service.prepare, service.add_avatar(wire.encode_image(flat(100), "png")))
    state = SessionState()
    bad = FrameJob(prepared, state, b"garbage", b"", None, "jpeg", 90, 2)
    results = service.run_frames([job(prepared, state, 50, 1), bad, job(prepared, state, 70, 3)])
    assert [r.seq for r in results] == [1, 2, 3]
    assert results[0].error is None and results[2].error is None and wire.decode_image(results[2].data).mean() == 120
    assert isinstance(results[1].error, wire.WireError)
    assert service.batches == 1 and service.max_batch == 3
    engine = prepared.engine
    prepared.release()  # Serve unloaded it (LRU): the engine goes back, queued frames fail
    late = service.run_frames([job(prepared, state, 60)])[0]
    assert late.error is not None and late.error.code == "evicted"
    other = on_thread(service, service.prepare, service.add_avatar(wire.encode_image(flat(200), "png")))
    assert other.engine is engine and engine.source.mean() == 200  # the spare got the next avatar


@pytest.mark.parametrize("name", ["remote", "auto"])
def test_the_service_hosts_only_an_engine_of_its_own_machine(name):
    """'remote' is a client of another server and 'auto' is not a choice yet: a replica built
    with either refuses with a message, before anything loads."""
    from avatarify_app.errors import ConfigError

    with pytest.raises(ConfigError, match="engine of its own machine"):
        Service(EngineConfig(name=name, options={"server": "http://127.0.0.1:9"}))


def test_serve_refuses_to_host_the_remote_engine(capsys):
    """`serve --engine remote` says what serve is for and names engines it can host."""
    from avatarify_app.cli import main

    rc = main(["serve", "--engine", "remote", "--server", "http://127.0.0.1:9", "--port", "8011"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "client of one" in err and "--engine fomm" in err


def test_serve_refuses_an_engine_that_cannot_run_here_before_starting_ray(tmp_path, capsys):
    """No weights for the engine asked for: the replicas would fail the same way, so the command
    says why before any Ray process starts."""
    import sys

    from avatarify_app.cli import main

    rc = main(["serve", "--engine", "liveportrait", "--checkpoint", str(tmp_path), "--port", "8012"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot run here" in err and "base_models/motion_extractor.pth" in err and "--engine landmarks" in err
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_a_replica_that_dies_is_reported_by_its_own_error():
    """Serve keeps the replica's traceback in the deployment status; the command shows its
    exception line (and our hint line after it), not Ray's "failed to update the deployments"."""
    from types import SimpleNamespace

    from avatarify_app.serve.runtime import _deployment_problem
    from avatarify_app.serve.settings import SERVE_APP_NAME

    message = ("The deployment failed to start 3 times in a row.\nTraceback (most recent call last):\n"
               '  File "x.py", line 1, in <module>\n'
               "avatarify_app.errors.CheckpointError: /w/motion_extractor.pth is not a PyTorch checkpoint: "
               "it is a text file.\nhint: Use the authors' released weights.\n")
    status = SimpleNamespace(applications={SERVE_APP_NAME: SimpleNamespace(
        deployments={"engine": SimpleNamespace(message=message), "ingress": SimpleNamespace(message="")})})
    found = _deployment_problem(SimpleNamespace(status=lambda: status))
    assert found == ("/w/motion_extractor.pth is not a PyTorch checkpoint: it is a text file. "
                     "(hint: Use the authors' released weights.)")
    assert _deployment_problem(SimpleNamespace(status=lambda: SimpleNamespace(applications={}))) is None

    def broken():
        raise ConnectionError("no controller")

    assert _deployment_problem(SimpleNamespace(status=broken)) is None
