"""kbuild.build_kernel runs without Python's cycle collector (the build's objects live until it
ends) and gives it back as it found it, whether the build succeeds, fails or is interrupted."""

from __future__ import annotations

import gc

import pytest

import kbuild
import kbuild.full


@pytest.mark.parametrize("outcome", ["built", "failed", "interrupted"])
def test_the_collector_is_off_during_a_build_and_restored_after(tmp_path, monkeypatch, outcome):
    seen = []

    def build(out, kernel_dir, store):
        seen.append(gc.isenabled())
        if outcome == "failed":
            raise ValueError("broken")
        if outcome == "interrupted":
            raise KeyboardInterrupt
        return kbuild.Built({}, {}, ["  summary"])

    monkeypatch.setattr(kbuild.full, "build", build)
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            result = kbuild.build_kernel(tmp_path / "out", cache=False)
            assert gc.isenabled() is enabled  # as it was before the build
        finally:
            gc.enable()
        assert result.ok is (outcome == "built")
    assert seen == [False, False]
