"""The Hub's repository routes for spaces: create, move, settings, branches and refs."""

import json
import re
import subprocess

from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from spacedock.accounts.models import creatable_namespace
from spacedock.api.protocol import ApiError, api_error, json_body, required, with_api_errors
from spacedock.api.views_spaces import env_entries, hardware_of, sleep_time_of
from spacedock.buckets.models import set_volumes
from spacedock.gitserver import repo as gitrepo
from spacedock.gitserver.repo import DEFAULT_BRANCH
from spacedock.hardware.models import SpaceHardware
from spacedock.spaces import config as spaceconfig
from spacedock.spaces.access import acting_user, owned_space, space_owner, space_reader
from spacedock.spaces.models import Deployment, Space, valid_name

BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]{1,200}(?<![./])$")


def _visibility(data: dict) -> str | None:
    if data.get("visibility") is not None:
        if data["visibility"] not in ("public", "private"):
            raise ApiError(400, "visibility must be 'public' or 'private'")
        return data["visibility"]
    if data.get("private") is not None:
        return "private" if data["private"] else "public"
    return None


def _own_namespace(user, namespace: str | None):
    """The account that will own a space created by `user` under `namespace` (theirs by default)."""
    account = creatable_namespace(user, namespace or user.username)
    if account is None:
        raise ApiError(
            403,
            f"You can only create spaces under your own name ({user.username}/...) or an organization "
            "where you have write",
        )
    return account


def _exists(request, full_name: str) -> JsonResponse:
    # huggingface_hub's create_repo(exist_ok=True) reads the url from the 409 answer.
    response = api_error(409, "You already created this space repo")
    response.content = json.dumps(
        {
            "error": "You already created this space repo",
            "url": request.build_absolute_uri(f"/spaces/{full_name}"),
        }
    )
    return response


@csrf_exempt
@with_api_errors
@require_POST
def create_repo(request):
    user = acting_user(request)
    data = json_body(request)
    if data.get("type") != "space":
        raise ApiError(400, "Spacedock holds spaces only: send type 'space' (repo_type='space')")
    name = required(data, "name")
    owner = _own_namespace(user, data.get("organization"))
    if not valid_name(name):
        raise ApiError(400, f"{name!r} is not a valid space name: letters, digits, '-', '_' and '.'")
    sdk = data.get("sdk") or ""
    if sdk and sdk not in spaceconfig.SDKS:
        raise ApiError(400, f"sdk {sdk!r} is not served here: use one of {', '.join(spaceconfig.SDKS)}")
    secrets, variables = env_entries(data, "secrets"), env_entries(data, "variables")
    sleep_time = sleep_time_of(data)
    hardware = hardware_of(data, owner)
    if Space.objects.filter(owner=owner, name=name).exists():
        return _exists(request, f"{owner.username}/{name}")
    try:
        with transaction.atomic():
            space = Space.create(owner, name, visibility=_visibility(data) or "public", sdk=sdk)
            for key, value in variables.items():
                space.set_variable(key, value)
            for key, value in secrets.items():
                space.set_variable(key, value, secret=True)
            if hardware is not None:
                SpaceHardware.request(space, hardware, user)
            if data.get("volumes"):  # create_repo's space_volumes, as set_space_volumes takes them
                set_volumes(space, data["volumes"])
    except IntegrityError:
        return _exists(request, f"{owner.username}/{name}")
    except ValueError as exc:  # a volume refused, said as set_space_volumes says it
        raise ApiError(400, str(exc)) from None
    if sleep_time is not None:
        space.set_sleep_time(sleep_time)
    return JsonResponse(
        {"url": request.build_absolute_uri(f"/spaces/{space.full_name}"), "name": space.full_name}
    )


@csrf_exempt
@with_api_errors
@require_POST
def move_repo(request):
    data = json_body(request)
    if data.get("type") != "space":
        raise ApiError(400, "Spacedock holds spaces only: send type 'space' (repo_type='space')")
    from_owner, _, from_name = required(data, "fromRepo").partition("/")
    to_owner, _, to_name = required(data, "toRepo").partition("/")
    space = owned_space(request, from_owner, from_name)
    if to_owner != space.owner.username:
        raise ApiError(
            400, "A space moves within its owner's namespace: transfers to others are not supported"
        )
    if not valid_name(to_name):
        raise ApiError(400, f"{to_name!r} is not a valid space name: letters, digits, '-', '_' and '.'")
    if Space.objects.filter(owner=space.owner, name=to_name).exists():
        raise ApiError(409, f"{to_owner}/{to_name} already exists")
    old_path, new_path = space.repo_path, gitrepo.path_for(to_owner, to_name)
    with transaction.atomic():
        # The subdomain was fixed at creation and stays: the app keeps its URL and its container.
        Space.objects.filter(pk=space.pk).update(name=to_name)
        new_path.parent.mkdir(parents=True, exist_ok=True)
        old_path.rename(new_path)
    return JsonResponse({})


@csrf_exempt
@with_api_errors
@require_http_methods(["PUT"])
@space_owner
def repo_settings(request, space: Space):
    data = json_body(request)
    if data.get("gated"):
        raise ApiError(400, "Spacedock has no gated spaces: use private instead")
    visibility = _visibility(data)
    if visibility is not None:
        space.set_visibility(visibility)
    return JsonResponse({})


def _refs(space: Space, kind: str) -> list[dict]:
    if not (space.repo_path / "HEAD").exists():
        return []
    out = subprocess.run(
        ["git", f"--git-dir={space.repo_path}", "for-each-ref", "--format=%(refname)%09%(objectname)",
         f"refs/{kind}/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    refs = []
    for line in out.splitlines():
        ref, _, sha = line.partition("\t")
        refs.append({"name": ref.removeprefix(f"refs/{kind}/"), "ref": ref, "targetCommit": sha})
    return refs


@with_api_errors
@require_GET
@space_reader
def list_refs(request, space: Space):
    answer = {"branches": _refs(space, "heads"), "converts": [], "tags": _refs(space, "tags")}
    if request.GET.get("include_prs"):
        answer["pullRequests"] = []
    return JsonResponse(answer)


@csrf_exempt
@with_api_errors
@require_http_methods(["POST", "DELETE"])
@space_owner
def branch(request, space: Space, branch: str):
    if not BRANCH.match(branch) or branch.startswith("refs/"):
        raise ApiError(400, f"Invalid reference for a branch: {branch}")
    git = ["git", f"--git-dir={space.repo_path}"]
    if request.method == "DELETE":
        if branch == DEFAULT_BRANCH:
            raise ApiError(403, f"Cannot delete the default branch {DEFAULT_BRANCH}")
        result = subprocess.run([*git, "update-ref", "-d", f"refs/heads/{branch}"], capture_output=True)
        if gitrepo.resolve(space.repo_path, f"refs/heads/{branch}") is not None or result.returncode:
            raise ApiError(404, f"Branch {branch} not found", code="RevisionNotFound")
        Deployment.branch_deleted(space, branch)
        return JsonResponse({})
    if gitrepo.resolve(space.repo_path, f"refs/heads/{branch}") is not None:
        raise ApiError(409, f"Reference already exists: refs/heads/{branch}")
    start = json_body(request).get("startingPoint") or DEFAULT_BRANCH
    sha = gitrepo.resolve(space.repo_path, start)
    if sha is None:
        raise ApiError(404, f"Invalid rev id: {start}", code="RevisionNotFound")
    made = subprocess.run(
        [*git, "update-ref", f"refs/heads/{branch}", sha, "0" * 40], capture_output=True, text=True
    )
    if made.returncode:
        # A name that clashes with a branch's folder (feature beside feature/x), which git refuses.
        raise ApiError(409, f"Cannot create branch {branch}: {made.stderr.strip()[:200]}")
    return JsonResponse({})


@csrf_exempt
@with_api_errors
@require_POST
def validate_yaml(request):
    """upload_folder and upload_file check a README.md here before committing it.

    Broken YAML is an error, as on the Hub; a front matter that cannot describe a space is a
    warning (the client prints it): a push of the same README is kept and the space shows
    CONFIG_ERROR with the same message, so the fix is one more commit.
    """
    content = json_body(request).get("content")
    if not isinstance(content, str):
        raise ApiError(400, "Send {'content': <README.md>, 'repoType': ...}")
    try:
        spaceconfig.front_matter(content)
    except spaceconfig.ConfigError as exc:
        if "front matter is not valid YAML" in str(exc) or "alias" in str(exc):
            return JsonResponse({"errors": [{"message": str(exc)}]}, status=400)
    try:
        spaceconfig.parse(content)
    except spaceconfig.ConfigError as exc:
        return JsonResponse({"warnings": [{"message": str(exc)}]})
    return JsonResponse({"warnings": []})
