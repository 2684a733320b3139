"""The kernel build as a library: `kbuild.build_kernel(out, kernel_dir, cache=True) ->
BuildResult` and the rest of kbuild/core.py, loaded on first use, so that `python build.py`
asking a build server (kbuild/client.py) starts without it."""

from __future__ import annotations

import importlib


def __getattr__(name: str) -> object:
    if name.startswith("__"):  # import machinery's questions (__path__ is set, the rest absent)
        raise AttributeError(name)
    core = importlib.import_module("kbuild.core")
    try:
        return getattr(core, name)
    except AttributeError:
        raise AttributeError(f"module 'kbuild' has no attribute '{name}'") from None
