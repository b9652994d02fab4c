"""README front matter: what the Hub accepts is accepted, and mistakes say how to fix them."""

import pytest

from spacedock.spaces.config import ConfigError, parse
from spacedock.spaces.models import Build, Space


@pytest.mark.fast
def test_hub_defaults(settings):
    config = parse("---\nsdk: gradio\n---\n")
    assert config.app_file == "app.py"
    assert config.app_port == 7860
    assert config.sdk_version == settings.DEFAULT_GRADIO_VERSION
    assert config.startup_duration_timeout == 30 * 60


@pytest.mark.fast
def test_every_documented_key_is_read():
    config = parse(
        """---
title: Full
emoji: 🔥
colorFrom: red
colorTo: purple
sdk: docker
app_port: 8000
python_version: "3.11"
short_description: All the keys
tags: [a, b]
pinned: true
license: mit
startup_duration_timeout: 1h
disable_embedding: true
custom_headers:
  Cross-Origin-Embedder-Policy: require-corp
  cross-origin-opener-policy: same-origin
models: [openai/whisper-tiny]
datasets: mnist
---
text
"""
    )
    assert (config.title, config.emoji, config.colorFrom, config.colorTo) == ("Full", "🔥", "red", "purple")
    assert config.app_port == 8000 and config.app_file == ""
    assert config.python_version == "3.11" and config.license == "mit"
    assert config.tags == ["a", "b"] and config.pinned and config.disable_embedding
    assert config.startup_duration_timeout == 3600
    assert config.models == ["openai/whisper-tiny"] and config.datasets == ["mnist"]
    assert config.custom_headers == {
        "cross-origin-embedder-policy": "require-corp",
        "cross-origin-opener-policy": "same-origin",
    }


@pytest.mark.fast
@pytest.mark.parametrize(
    "written, read",
    [("", ""), ("3", ""), ('"3.11"', "3.11"), ("3.11.9", "3.11"), ('"3.13"', "3.13")],
)
def test_python_version_picks_an_offered_interpreter(settings, written, read):
    settings.PYTHON_IMAGES = {"3.11": settings.BASE_IMAGE, "3.13": "spacedock/base:trixie"}
    line = f"python_version: {written}\n" if written else ""
    assert parse(f"---\nsdk: gradio\n{line}---\n").python_version == read


@pytest.mark.fast
def test_a_python_version_not_offered_is_a_config_error_naming_the_offered_ones(settings):
    settings.PYTHON_IMAGES = {"3.11": settings.BASE_IMAGE, "3.13": "spacedock/base:trixie"}
    with pytest.raises(
        ConfigError,
        match=r"python_version 3\.9 is not offered here\. This server builds with Python 3\.11, 3\.13",
    ):
        parse('---\nsdk: gradio\npython_version: "3.9"\n---\n')
    # YAML reads 3.10 as the number 3.1: the message says to quote it.
    with pytest.raises(ConfigError, match=r'Write it in quotes, for example python_version: "3\.10"'):
        parse("---\nsdk: static\npython_version: 3.10\n---\n")
    # A docker space's own Dockerfile picks its Python, as on the Hub.
    assert parse("---\nsdk: docker\npython_version: '3.9'\n---\n").python_version == "3.9"


@pytest.mark.fast
@pytest.mark.parametrize(
    "readme, says",
    [
        ("# no front matter\n", "has no front matter"),
        ("---\nsdk: [gradio\n---\n", "not valid YAML at line 2"),
        ("---\nsdk: streamlit\n---\n", "Run it as sdk: docker"),
        ("---\nsdk: rocket\n---\n", "sdk 'rocket' is not supported here"),
        ("---\ntitle: x\n---\n", "has no 'sdk'"),
        ("---\nsdk: gradio\ncolorFrom: teal\n---\n", "colorFrom 'teal'"),
        ("---\nsdk: docker\napp_port: web\n---\n", "app_port 'web'"),
        ("---\nsdk: gradio\napp_file: ../../etc/passwd\n---\n", "inside the repository"),
        ("---\nsdk: gradio\nstartup_duration_timeout: soon\n---\n", "like 30m"),
        ("---\n- a\n- b\n---\n", "key: value"),
        ("---\nsdk: gradio\ncustom_headers: coop\n---\n", "must be a map of header: value"),
        (
            "---\nsdk: gradio\ncustom_headers:\n  Set-Cookie: a=b\n---\n",
            "'Set-Cookie' cannot be set; a space may set only cross-origin-embedder-policy",
        ),
        (
            "---\nsdk: gradio\ncustom_headers:\n  cross-origin-opener-policy: open\n---\n",
            "cross-origin-opener-policy 'open' is not one of unsafe-none, same-origin-allow-popups",
        ),
    ],
)
def test_mistakes_say_what_to_fix(readme, says):
    with pytest.raises(ConfigError, match=says.replace("[", r"\[")):
        parse(readme)


README_GRADIO = "---\nsdk: gradio\n---\n"


@pytest.mark.parametrize(
    "files, stage, says",
    [
        (
            {"README.md": "---\nsdk: gradio\ntitle: [oops\n---\n", "app.py": "x"},
            "CONFIG_ERROR",
            "not valid YAML",
        ),
        ({"README.md": "---\nsdk: rocket\n---\n", "app.py": "x"}, "CONFIG_ERROR", "sdk 'rocket'"),
        ({"app.py": "x"}, "CONFIG_ERROR", "README.md is missing"),
        ({"README.md": README_GRADIO, "main.py": "x"}, "NO_APP_FILE", "app.py is not in commit"),
        ({"README.md": "---\nsdk: docker\n---\n", "app.py": "x"}, "NO_APP_FILE", "needs a Dockerfile"),
    ],
)
def test_a_push_with_a_broken_config_says_why(live, token_for, make_repo, files, stage, says):
    repo = make_repo(files)
    pushed = repo.push(live.git_url("alice", "broken", token_for("alice")))
    assert pushed.returncode == 0, pushed.stderr  # the commit is kept: the author fixes it with another push
    assert stage in pushed.stderr and says in pushed.stderr

    runtime = live.api("spaces/alice/broken/runtime").json()
    assert runtime["stage"] == stage
    assert says in runtime["errorMessage"]
    assert Build.objects.get().state == "failed"

    # The fix is one more push.
    repo.write({"README.md": README_GRADIO, "app.py": "import gradio\n"})
    repo.commit("fix")
    assert repo.push(live.git_url("alice", "broken", token_for("alice"))).returncode == 0
    space = Space.objects.get()
    assert space.stage == "BUILDING" and space.stage_message == ""
