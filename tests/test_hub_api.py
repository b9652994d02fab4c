"""The Hub-shaped API, driven by the real huggingface_hub client against gunicorn."""

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from spacedock.spaces.models import Build, BuildLogLine, RunLogLine, Space


@pytest.fixture
def alice(live, token_for, make_repo):
    """alice's token and an HfApi for it, after she pushed the hello space."""
    token = token_for("alice")
    assert make_repo().push(live.git_url("alice", "hello", token)).returncode == 0
    return token, HfApi(endpoint=live.url, token=token)


def test_space_info_runtime_and_whoami(live, alice):
    token, api = alice
    info = api.space_info("alice/hello")
    space = Space.objects.get(name="hello")
    assert info.id == "alice/hello" and info.author == "alice"
    assert info.sha == space.head_sha
    assert info.sdk == "gradio" and info.tags == ["demo", "text"]
    assert info.card_data.title == "Hello" and info.card_data.emoji == "👋"
    assert info.subdomain == "alice-hello" and info.host == space.url
    assert info.created_at is not None and info.last_modified is not None
    assert sorted(s.rfilename for s in info.siblings) == ["README.md", "app.py"]
    assert info.runtime.stage == "BUILDING"

    assert api.get_space_runtime("alice/hello").stage == "BUILDING"
    assert api.whoami()["name"] == "alice"

    with pytest.raises(RepositoryNotFoundError):
        api.space_info("alice/nothing-here")
    with pytest.raises(HfHubHTTPError) as bad:
        HfApi(endpoint=live.url, token="sd_wrong").space_info("alice/hello")
    assert bad.value.response.status_code == 401
    assert not isinstance(bad.value, RepositoryNotFoundError)


def test_list_spaces_by_author_search_tag_and_sort(live, alice, token_for, make_repo):
    _, api = alice
    bob = token_for("bob")
    readme = "---\ntitle: Image Sorter\nsdk: gradio\nshort_description: Sorts pictures\ntags: [vision]\n---\n"
    assert (
        make_repo({"README.md": readme, "app.py": "x"}).push(live.git_url("bob", "sorter", bob)).returncode
        == 0
    )
    private = make_repo({"README.md": readme, "app.py": "x"})
    assert private.push(live.git_url("bob", "secret-sorter", bob)).returncode == 0
    Space.objects.filter(name="secret-sorter").update(visibility="private")
    Space.objects.get(name="sorter").like(Space.objects.get(name="hello").owner)

    assert [s.id for s in api.list_spaces(author="alice")] == ["alice/hello"]
    assert [s.id for s in api.list_spaces(search="pictures")] == ["bob/sorter"]  # the description
    assert [s.id for s in api.list_spaces(search="image sort")] == ["bob/sorter"]  # the title
    assert [s.id for s in api.list_spaces(filter="vision")] == ["bob/sorter"]
    assert [s.id for s in api.list_spaces(sort="likes")] == ["bob/sorter", "alice/hello"]
    assert [s.id for s in api.list_spaces(sort="likes", limit=1)] == ["bob/sorter"]
    full = next(iter(api.list_spaces(author="bob", full=True)))
    assert full.card_data.title == "Image Sorter" and full.last_modified is not None
    # The private space: only its owner lists it.
    bobs = HfApi(endpoint=live.url, token=bob)
    assert sorted(s.id for s in bobs.list_spaces(author="bob")) == ["bob/secret-sorter", "bob/sorter"]
    with pytest.raises(RepositoryNotFoundError):
        api.space_info("bob/secret-sorter")


def test_variables_and_secrets(live, alice, token_for):
    token, api = alice
    space = Space.objects.get(name="hello")
    generation = space.generation

    api.add_space_variable("alice/hello", "MODEL", "tiny", description="which model")
    api.add_space_secret("alice/hello", "API_KEY", "hunter2-value")
    variables = api.get_space_variables("alice/hello")
    assert list(variables) == ["MODEL"]
    assert variables["MODEL"].value == "tiny" and variables["MODEL"].description == "which model"
    secrets = api.get_space_secrets("alice/hello")
    assert list(secrets) == ["API_KEY"] and secrets["API_KEY"].updated_at is not None
    space.refresh_from_db()
    assert space.generation == generation + 2  # each change asks the runner for a restart
    assert space.env()["API_KEY"] == "hunter2-value" and space.env()["MODEL"] == "tiny"
    for path in ("spaces/alice/hello", "spaces/alice/hello/secrets", "spaces/alice/hello/variables"):
        answer = live.api(path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and "hunter2-value" not in answer.text

    with pytest.raises(BadRequestError, match="not a valid variable name"):
        api.add_space_variable("alice/hello", "1-bad", "x")
    with pytest.raises(HfHubHTTPError) as other:
        HfApi(endpoint=live.url, token=token_for("mallory")).add_space_secret("alice/hello", "K", "v")
    assert other.value.response.status_code == 403 and "only its owner" in str(other.value)
    with pytest.raises(HfHubHTTPError) as read_only:
        HfApi(endpoint=live.url, token=token_for("alice", scope="read")).add_space_variable(
            "alice/hello", "A", "b"
        )
    assert read_only.value.response.status_code == 403 and "read scope" in str(read_only.value)

    assert api.delete_space_variable("alice/hello", "MODEL") == {}
    api.delete_space_secret("alice/hello", "API_KEY")
    assert api.get_space_variables("alice/hello") == {} and api.get_space_secrets("alice/hello") == {}
    assert "API_KEY" not in Space.objects.get(pk=space.pk).env()


def test_duplicate_like_and_delete(live, alice, token_for):
    _, api = alice
    api.add_space_variable("alice/hello", "MODEL", "tiny")
    api.add_space_secret("alice/hello", "API_KEY", "alice-only")
    bob_token = token_for("bob")
    bob = HfApi(endpoint=live.url, token=bob_token)

    url = bob.duplicate_repo(
        "alice/hello", to_id="hello-copy", repo_type="space", space_secrets=[{"key": "BOB_KEY", "value": "b"}]
    )
    assert url.repo_id == "bob/hello-copy" and url.repo_type == "space"
    copy = Space.objects.get(owner__username="bob", name="hello-copy")
    original = Space.objects.get(owner__username="alice", name="hello")
    assert copy.head_sha == original.head_sha and copy.title == "Hello"
    assert copy.builds.get().state == "queued"  # the copy builds on its own
    assert copy.env()["MODEL"] == "tiny" and copy.env()["BOB_KEY"] == "b"
    assert "API_KEY" not in copy.env()  # alice's secret stays hers
    with pytest.raises(HfHubHTTPError) as again:
        bob.duplicate_repo("alice/hello", to_id="hello-copy", repo_type="space")
    assert again.value.response.status_code == 409

    # Liking: the Hub's client has no like() (it forbids it from scripts); the route is the Hub's.
    liked = get_session().post(
        f"{live.url}/api/spaces/alice/hello/like", headers=build_hf_headers(token=bob_token)
    )
    hf_raise_for_status(liked)
    assert api.space_info("alice/hello").likes == 1
    assert bob.list_liked_repos("bob").spaces == ["alice/hello"]
    assert [u.username for u in api.list_repo_likers("alice/hello", repo_type="space")] == ["bob"]
    bob.unlike("alice/hello", repo_type="space")
    assert api.space_info("alice/hello").likes == 0

    repo_path = copy.repo_path
    assert repo_path.exists()
    with pytest.raises(HfHubHTTPError) as not_yours:
        api.delete_repo("bob/hello-copy", repo_type="space")
    assert not_yours.value.response.status_code == 403
    bob.delete_repo("bob/hello-copy", repo_type="space")
    assert not repo_path.exists() and not Space.objects.filter(name="hello-copy").exists()
    with pytest.raises(RepositoryNotFoundError):
        bob.space_info("bob/hello-copy")
    bob.delete_repo("bob/hello-copy", repo_type="space", missing_ok=True)


def test_fetch_space_logs(live, alice):
    _, api = alice
    space = Space.objects.get(name="hello")
    build = Build.objects.get(space=space)
    build.start()
    BuildLogLine.append(build, "Step 1/3: installing requirements")
    BuildLogLine.append(build, "Step 2/3: copying the app")
    build.succeed("image:1")
    # Space.log_run needs RunLogLine.append, which the runner's branch brings; a row is the same.
    RunLogLine.objects.create(space=space, number=0, text="Running on local URL:  http://0.0.0.0:7860")

    assert list(api.fetch_space_logs("alice/hello", build=True)) == [
        "Step 1/3: installing requirements\n",
        "Step 2/3: copying the app\n",
    ]
    assert list(api.fetch_space_logs("alice/hello")) == ["Running on local URL:  http://0.0.0.0:7860\n"]


def test_list_spaces_follows_pages(live, alice):
    _, api = alice
    owner = Space.objects.get(name="hello").owner
    Space.objects.bulk_create(
        [Space(owner=owner, name=f"many-{i}", subdomain=f"alice-many-{i}") for i in range(1004)]
    )
    listed = [s.id for s in api.list_spaces(author="alice", sort="createdAt")]
    assert len(listed) == 1005 == len(set(listed))  # 1000 a page; the client follows the Link header
