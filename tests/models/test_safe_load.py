"""Weight files of any family are read without running code, and a wrong file is named for what it is."""

from __future__ import annotations

import pytest
import torch

from avatarify_app.errors import CheckpointError
from avatarify_app.models.safe_load import describe_file, load_weights, strip_prefix

HINT = "get the right file"


def _fails(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_weights(path, HINT)
    text = str(info.value)
    assert str(path) in text
    # torch's advice to retry with weights_only=False would run an untrusted file's code.
    assert "weights_only" not in text and "will likely succeed" not in text
    return text


def test_empty_file_says_empty(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    text = _fails(path)
    assert "empty file" in text and "no detail" not in text


@pytest.mark.parametrize(("content", "words"), [
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "web page"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
    (b"\x1f\x8b\x08\x00" + bytes(64), "gzip"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n", "Git LFS pointer"),
    (b"just some notes\n", "text file"),
])
def test_wrong_kind_of_file_is_named(tmp_path, content, words):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    assert words in _fails(path)


def test_zip_that_is_not_a_checkpoint(tmp_path):
    import zipfile

    path = tmp_path / "weights.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    assert "ZIP archive that is not a PyTorch checkpoint" in _fails(path)


def test_safetensors_round_trip_and_garbage(tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.arange(6.0).reshape(2, 3)}, str(good))
    data = load_weights(good, HINT)
    assert torch.equal(data["a.weight"], torch.arange(6.0).reshape(2, 3))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    assert "not a readable .safetensors" in _fails(bad)


def test_plain_torch_file_loads(tmp_path):
    path = tmp_path / "sd.pth"
    torch.save({"w": torch.ones(2)}, path)
    assert describe_file(path) == "a PyTorch archive"
    assert torch.equal(load_weights(path, HINT)["w"], torch.ones(2))


def test_strip_prefix_only_when_every_key_has_it():
    t = torch.zeros(1)
    assert set(strip_prefix({"module.a": t, "module.b": t}, "module.")) == {"a", "b"}
    assert set(strip_prefix({"module.a": t, "b": t}, "module.")) == {"module.a", "b"}
