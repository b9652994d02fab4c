"""The warm pool's rules without Docker: which builds are adoptable, and what the agent does with a
variable that Gradio's import read (tests/test_pool.py runs the agent for real)."""

import sys
import types

import pytest

from builder.dockerfiles import adoptable
from runner import pool_agent
from spacedock.spaces.config import SpaceConfig

pytestmark = pytest.mark.fast


def test_only_a_gradio_space_of_its_files_alone_is_adoptable():
    gradio = SpaceConfig(sdk="gradio")
    assert adoptable(gradio, {"app.py", "README.md", "helpers.py"})
    for extra in ("requirements.txt", "pre-requirements.txt", "packages.txt"):
        assert not adoptable(gradio, {"app.py", "README.md", extra})
    assert not adoptable(SpaceConfig(sdk="docker"), {"Dockerfile", "README.md"})
    assert not adoptable(SpaceConfig(sdk="static"), {"index.html", "README.md"})


def test_a_variable_kept_verbatim_is_rebound_anything_else_starts_afresh(monkeypatch):
    kept = types.ModuleType("kept")  # OAUTH_CLIENT_ID = os.environ.get("OAUTH_CLIENT_ID")
    kept.OAUTH_CLIENT_ID = None
    derived = types.ModuleType("derived")  # HF_HOME = expanduser(os.getenv("HF_HOME", "~/.cache/hf"))
    derived.HF_HOME = "/home/user/.cache/hf"
    monkeypatch.setitem(sys.modules, "kept", kept)
    monkeypatch.setitem(sys.modules, "derived", derived)
    for key in ("OAUTH_CLIENT_ID", "HF_HOME", "SPACE_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(pool_agent, "walkers", {"fsspec.config", "urllib.request"})
    monkeypatch.setattr(
        pool_agent,
        "reads",
        {"OAUTH_CLIENT_ID": {("kept", True)}, "HF_HOME": {("derived", True)}, "HOME": {("posixpath", False)}},
    )

    # Read by nothing, or kept as it was read: set again in place.
    assert pool_agent.stale({"SPACE_ID", "MY_SECRET"}) == ([], "")
    assert pool_agent.stale({"OAUTH_CLIENT_ID", "SPACE_ID"}) == ([("kept", "OAUTH_CLIENT_ID")], "")
    # Kept as something else, read through a helper, seen by a walker, or read by the interpreter.
    assert pool_agent.stale({"OAUTH_CLIENT_ID", "HF_HOME"}) == ([], "HF_HOME")
    assert pool_agent.stale({"HOME"}) == ([], "HOME")
    assert pool_agent.stale({"FSSPEC_CONFIG_DIR"}) == ([], "FSSPEC_CONFIG_DIR")
    assert pool_agent.stale({"HTTPS_PROXY"}) == ([], "HTTPS_PROXY")
    assert pool_agent.stale({"PYTHONPATH"}) == ([], "PYTHONPATH")
    # A module that walked the whole environment and is not known to keep only its own prefix.
    monkeypatch.setattr(pool_agent, "walkers", {"somelib.settings"})
    assert pool_agent.stale({"SPACE_ID"}) == ([], "SPACE_ID")
