"""README front matter written to hurt: aliases that expand into gigabytes, huge blocks, values
longer than their column. Each gets a config error that quotes no more than a short excerpt."""

import pytest

from spacedock.spaces.config import ConfigError, parse
from spacedock.spaces.models import Build, Space

# Nine levels of nine aliases: 9**9 (387 million) strings from about 500 bytes.
BILLION_LAUGHS = (
    "---\nsdk: gradio\na: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    + "title: *i\n---\n"
)


@pytest.mark.fast
def test_aliases_are_refused_before_anything_expands_them():
    assert len(BILLION_LAUGHS) < 600
    with pytest.raises(ConfigError, match="uses a YAML alias"):
        parse(BILLION_LAUGHS)


@pytest.mark.fast
def test_a_huge_front_matter_block_is_refused_with_the_limit():
    readme = "---\nsdk: gradio\n" + "".join(f"k{i}: {'x' * 90}\n" for i in range(400)) + "---\n"
    with pytest.raises(ConfigError, match="the limit is 16 KiB"):
        parse(readme)


@pytest.mark.fast
@pytest.mark.parametrize("key, limit", [("title", 200), ("emoji", 20), ("license", 50)])
def test_values_longer_than_their_column_are_config_errors(key, limit):
    with pytest.raises(ConfigError, match=f"at most {limit} fit") as error:
        parse(f"---\nsdk: gradio\n{key}: {'y' * 5000}\n---\n")
    assert len(str(error.value)) < 200  # an excerpt, not the value


@pytest.mark.fast
def test_error_messages_quote_only_an_excerpt():
    with pytest.raises(ConfigError) as error:
        parse(f"---\nsdk: gradio\ncolorFrom: {'z' * 10000}\n---\n")
    assert "not a color we know" in str(error.value) and len(str(error.value)) < 200


def test_a_push_with_an_oversized_title_says_why_and_keeps_the_commit(live, token_for, make_repo):
    # Before: the title went to a 200-character column and the push hook failed with a database error.
    repo = make_repo({"README.md": f"---\nsdk: gradio\ntitle: {'T' * 300}\n---\n", "app.py": "x"})
    pushed = repo.push(live.git_url("alice", "long", token_for("alice")))
    assert pushed.returncode == 0, pushed.stderr
    assert "CONFIG_ERROR" in pushed.stderr and "at most 200 fit" in pushed.stderr
    runtime = live.api("spaces/alice/long/runtime").json()
    assert runtime["stage"] == "CONFIG_ERROR" and "'title'" in runtime["errorMessage"]
    assert Build.objects.get().state == "failed"
    assert Space.objects.get().head_sha == repo.git("rev-parse", "HEAD").stdout.strip()
