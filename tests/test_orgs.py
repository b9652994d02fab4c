"""Organizations with the real clients: git pushes into an organization's namespace by role,
huggingface_hub sees the organizations in whoami and creates spaces under one, and the pages
create organizations and manage members."""

import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from spacedock.accounts.models import AccessToken, Organization
from spacedock.spaces.models import Space
from tests.conftest import ROOT, process_env


@pytest.fixture
def lab(live):
    """The organization `lab`: alice admin, bob write, carol read; dave is no member."""
    users = {name: User.objects.create_user(name) for name in ("alice", "bob", "carol", "dave")}
    org = Organization.create("lab", users["alice"], "The Lab")
    org.set_role(users["alice"], "bob", "write")
    org.set_role(users["alice"], "carol", "read")
    tokens = {name: AccessToken.issue(user, "test")[1] for name, user in users.items()}
    return org, users, tokens


def test_a_member_with_write_pushes_and_others_get_403(live, lab, make_repo, tmp_path):
    org, _, tokens = lab
    repo = make_repo()
    # A write member's first push creates the space, owned by the organization.
    pushed = repo.push(live.git_url("lab", "demo", tokens["bob"], user="bob"))
    assert pushed.returncode == 0, pushed.stderr
    space = Space.objects.get(name="demo")
    assert space.owner == org.account and space.full_name == "lab/demo"
    assert space.subdomain == "lab-demo"

    repo.write({"app.py": "print('changed')\n"})
    repo.commit("change")
    for who in ("dave", "carol"):
        refused = repo.push(live.git_url("lab", "demo", tokens[who], user=who))
        assert refused.returncode != 0
        assert "403" in refused.stderr or "cannot push to lab/demo" in refused.stderr
        assert "members of the organization lab with write or admin" in refused.stderr
    # Nor may a non-member create a space in the organization.
    created = repo.push(live.git_url("lab", "other", tokens["dave"], user="dave"))
    assert created.returncode != 0 and "an organization where you have write" in created.stderr
    assert not Space.objects.filter(name="other").exists()
    # The admin pushes too.
    assert repo.push(live.git_url("lab", "demo", tokens["alice"], user="alice")).returncode == 0


def test_a_private_organization_space_is_for_its_members(live, lab, make_repo, tmp_path):
    _, _, tokens = lab
    repo = make_repo()
    assert repo.push(live.git_url("lab", "secret", tokens["bob"], user="bob")).returncode == 0
    Space.objects.filter(name="secret").update(visibility="private")
    cloned = repo.git(
        "clone", live.git_url("lab", "secret", tokens["carol"], user="carol"), str(tmp_path / "c")
    )
    assert cloned.returncode == 0, cloned.stderr
    stranger = repo.git(
        "clone", live.git_url("lab", "secret", tokens["dave"], user="dave"), str(tmp_path / "d"), check=False
    )
    assert stranger.returncode != 0 and "not found" in stranger.stderr
    # The API too: a reader sees it, a stranger does not.
    assert HfApi(endpoint=live.url, token=tokens["carol"]).space_info("lab/secret").id == "lab/secret"
    with pytest.raises(HfHubHTTPError, match="404"):
        HfApi(endpoint=live.url, token=tokens["dave"]).space_info("lab/secret")


def test_huggingface_hub_sees_and_uses_the_organization(live, lab):
    _, _, tokens = lab
    bob = HfApi(endpoint=live.url, token=tokens["bob"])
    orgs = bob.whoami()["orgs"]
    assert [(o["name"], o["type"], o["roleInOrg"], o["fullname"]) for o in orgs] == [
        ("lab", "org", "write", "The Lab")
    ]
    url = bob.create_repo("lab/made", repo_type="space", space_sdk="gradio", private=True)
    assert url.repo_id == "lab/made"
    bob.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id="lab/made", repo_type="space")
    assert bob.list_repo_files("lab/made", repo_type="space") == ["a.txt"]
    assert {m.username for m in bob.list_organization_members("lab")} == {"alice", "bob", "carol"}
    assert bob.get_organization_overview("lab").fullname == "The Lab"

    with pytest.raises(HfHubHTTPError, match="403"):
        HfApi(endpoint=live.url, token=tokens["dave"]).create_repo(
            "lab/nope", repo_type="space", space_sdk="gradio"
        )
    with pytest.raises(HfHubHTTPError, match="403"):
        HfApi(endpoint=live.url, token=tokens["carol"]).upload_file(
            path_or_fileobj=b"y", path_in_repo="b.txt", repo_id="lab/made", repo_type="space"
        )
    # Write members push; only admins delete.
    with pytest.raises(HfHubHTTPError, match="403"):
        bob.delete_repo("lab/made", repo_type="space")
    HfApi(endpoint=live.url, token=tokens["alice"]).delete_repo("lab/made", repo_type="space")
    assert not Space.objects.filter(name="made").exists()


def test_the_pages_create_an_organization_and_manage_its_members(live, lab):
    org, users, _ = lab
    erin = User.objects.create_user("erin")
    client = Client()
    client.force_login(erin)
    # A name taken by a user or an organization is refused; a new one makes erin its admin.
    for taken in ("alice", "LAB"):
        page = client.post("/organizations/new", {"name": taken})
        assert page.status_code == 200 and "is taken" in page.content.decode()
    assert client.post("/organizations/new", {"name": "erinlab"}).status_code == 302
    assert Organization.objects.get(account__username="erinlab").role_of(erin) == "admin"
    # The organization's account can never sign in or hold a token.
    account = User.objects.get(username="erinlab")
    assert not account.is_active and not account.has_usable_password()
    refused = subprocess.run(
        [sys.executable, "manage.py", "issue_token", "erinlab"], cwd=ROOT, env=process_env(),
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode != 0 and "is an organization" in refused.stderr
    assert not account.tokens.exists()

    # Only an admin adds members.
    assert client.post("/organizations/lab/members", {"username": "erin", "role": "write"}).status_code == 403
    admin = Client()
    admin.force_login(users["alice"])
    admin.post("/organizations/lab/members", {"username": "erin", "role": "write"})
    assert org.role_of(erin) == "write"
    page = admin.get("/lab").content.decode()
    assert "The Lab" in page and 'id="members"' in page and "erin" in page
    # The last admin cannot leave.
    admin.post("/organizations/lab/members/alice/remove")
    assert org.role_of(users["alice"]) == "admin"
    admin.post("/organizations/lab/members/erin/remove")
    assert org.role_of(erin) is None

    # A write member creates a space under the organization from the new-space page.
    bob = Client()
    bob.force_login(users["bob"])
    assert 'value="lab"' in bob.get("/new").content.decode()
    made = bob.post("/new", {"name": "fromweb", "namespace": "lab", "visibility": "private"})
    assert made.status_code == 302 and made["Location"] == "/lab/fromweb"
    # Its private space shows in the gallery to members only.
    carol = Client()
    carol.force_login(users["carol"])
    assert "fromweb" in carol.get("/").content.decode()
    dave = Client()
    dave.force_login(users["dave"])
    assert "fromweb" not in dave.get("/").content.decode()
    assert dave.get("/lab/fromweb").status_code == 404
