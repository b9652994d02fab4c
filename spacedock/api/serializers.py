"""The API's JSON, in the Hub's shapes: each field is built here and only here."""

from datetime import UTC

from django.contrib.auth.models import User

from spacedock.accounts.models import AccessToken
from spacedock.buckets.serializers import volumes_json
from spacedock.hardware.models import SpaceHardware
from spacedock.spaces.models import Build, Deployment, Space, Variable, trending_points


def hub_time(moment) -> str | None:
    """The Hub's timestamps, which huggingface_hub parses with '%Y-%m-%dT%H:%M:%S.%fZ'."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def runtime_json(space: Space) -> dict:
    hardware = SpaceHardware.of(space)
    return {
        "stage": space.stage,
        "errorMessage": space.stage_message or None,
        "hardware": {"current": hardware.current_for_api(), "requested": hardware.flavour().name},
        "volumes": volumes_json(space),
        "storage": None,
        "gcTimeout": space.sleep_time if space.sleep_time >= 0 else None,
        "replicas": {"current": 1 if space.container_id else 0, "requested": 1},
        "domains": [{"domain": space.host, "stage": "READY"}],
        "devMode": False,
    }


def build_json(build: Build | None) -> dict | None:
    if build is None:
        return None
    return {
        "id": build.pk,
        "commit": build.commit_sha,
        "state": build.state,
        "image": build.image or None,
        "error": build.error or None,
        "created": hub_time(build.created),
        "started": hub_time(build.started),
        "finished": hub_time(build.finished),
    }


def trending_now(space: Space) -> int:
    # The stored score grows with time; divided by today's factor it reads as recent events.
    return round(space.trending_score / trending_points(1.0))


def card_json(space: Space) -> dict:
    """The README's front matter, as the Hub's cardData."""
    return {
        "title": space.title,
        "emoji": space.emoji,
        "colorFrom": space.color_from,
        "colorTo": space.color_to,
        "sdk": space.sdk or None,
        "sdk_version": space.sdk_version or None,
        "python_version": space.python_version or None,
        "app_file": space.app_file or None,
        "app_port": space.app_port,
        "short_description": space.short_description or None,
        "pinned": space.pinned,
        "license": space.license or None,
        "tags": space.tags,
        "models": space.linked_models,
        "datasets": space.linked_datasets,
        "disable_embedding": space.disable_embedding,
    }


def list_item(space: Space, full: bool) -> dict:
    """A space in a listing (GET /api/spaces); `full` adds what ?full=true asks for."""
    item = {
        "_id": str(space.pk),
        "id": space.full_name,
        "author": space.owner.username,
        "likes": space.likes,
        "trendingScore": trending_now(space),
        "private": space.is_private,
        "sdk": space.sdk or None,
        "tags": space.tags,
        "createdAt": hub_time(space.created),
    }
    if full:
        item.update(
            lastModified=hub_time(space.updated),
            sha=space.head_sha or None,
            subdomain=space.subdomain,
            cardData=card_json(space),
        )
    return item


def space_json(space: Space) -> dict:
    """One space (GET /api/spaces/<owner>/<name>): the full listing item, its runtime and latest build."""
    return {
        **list_item(space, full=True),
        "disabled": False,
        "models": space.linked_models,
        "datasets": space.linked_datasets,
        "host": space.url,
        "runtime": runtime_json(space),
        "build": build_json(space.own_builds().first()),
        "pinnedBuilds": [pinned_json(b) for b in space.builds.filter(pinned=True).order_by("-created")],
        "previews": [
            preview_json(p) for p in space.deployments.filter(kind="preview").select_related("build")
        ],
    }


def preview_json(preview: Deployment) -> dict:
    build = preview.build
    return {
        "branch": preview.branch,
        "host": preview.host,
        "url": preview.url,
        "stage": preview.stage,
        "errorMessage": preview.stage_message or None,
        "build": build.pk if build else None,
        "sha": build.commit_sha if build else None,
    }


def pinned_json(build: Build) -> dict:
    return {
        "build": build.pk,
        "sha": build.commit_sha,
        "pinned": build.pinned,
        "host": build.pinned_host,
        "url": build.pinned_url,
    }


def variables_json(variables: list[Variable], secret: bool) -> dict:
    listing = {}
    for var in variables:
        entry = {"description": var.description or None, "updatedAt": hub_time(var.updated)}
        if not secret:  # a secret's value never leaves the server
            entry["value"] = var.value
        listing[var.key] = entry
    return listing


def liker_json(user: User) -> dict:
    return {"user": user.username, "fullname": user.get_full_name() or user.username, "avatarUrl": None}


def liked_repo_json(space: Space) -> dict:
    return {"createdAt": hub_time(space.created), "repo": {"name": space.full_name, "type": "space"}}


def whoami_json(token: AccessToken) -> dict:
    user = token.user
    return {
        "type": "user",
        "id": str(user.pk),
        "name": user.username,
        "fullname": user.get_full_name() or user.username,
        "email": user.email or None,
        "isPro": False,
        "orgs": [org_json(m.org, role=m.role) for m in user.memberships.select_related("org__account")],
        "auth": {
            "type": "access_token",
            "accessToken": {"displayName": token.name, "role": token.scope},
        },
    }


def org_json(org, role: str | None = None) -> dict:
    """An organization as the Hub shows it: in whoami's `orgs` (with the caller's role) and its overview."""
    data = {
        "type": "org",
        "id": str(org.account_id),
        "name": org.name,
        "fullname": org.full_name or org.name,
        "avatarUrl": "",
        "isEnterprise": False,
        "canPay": False,
    }
    if role is not None:
        data["roleInOrg"] = role
    return data


def member_json(membership) -> dict:
    user = membership.user
    return {
        "type": "user",
        "user": user.username,
        "fullname": user.get_full_name() or user.username,
        "avatarUrl": "",
        "role": membership.role,
    }
