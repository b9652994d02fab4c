"""The gallery and a space's pages: app, files, logs, API and embed."""

import git
import markdown
import nh3
import pygments
import pygments.formatters
import pygments.lexers
import pygments.util
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_POST

from spacedock.accounts.models import Quota, QuotaExceeded, creatable_namespace, writable_namespaces
from spacedock.clients import client_ip
from spacedock.gitserver import commits
from spacedock.gitserver import repo as gitrepo
from spacedock.gitserver.lfs import lfs_pointer_of
from spacedock.hardware.models import SpaceHardware
from spacedock.spaces import config as spaceconfig
from spacedock.spaces import gradio_api
from spacedock.spaces.access import readable_space, space_reader
from spacedock.spaces.embed import (
    citation,
    embed_snippets,
    pinned_app_url,
    pinned_embed_page,
    space_embed_url,
)
from spacedock.spaces.gallery import SORTS, filter_spaces
from spacedock.spaces.models import LIVE_STAGES, Space, valid_name

PAGE_SIZE = 24
MAX_PAGE_SIZE = 96
BLOB_LIMIT = 512 * 1024
HIGHLIGHT_LIMIT = 200 * 1024
ALLOW = "camera; microphone; clipboard-read; clipboard-write; fullscreen; display-capture; autoplay"


def gallery(request):
    q = request.GET.get("q", "")
    sort = request.GET.get("sort", "trending")
    sdk = request.GET.get("sdk", "")
    tag = request.GET.get("tag", "")
    spaces = filter_spaces(request.user, search=q, tags=[tag] if tag else [], sdk=sdk)
    spaces = spaces.order_by(SORTS.get(sort, SORTS["trending"]), "-pk").select_related("deployed_build")
    try:
        size = min(max(int(request.GET.get("size", PAGE_SIZE)), 1), MAX_PAGE_SIZE)
    except ValueError:
        size = PAGE_SIZE
    page = Paginator(spaces, size).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "spaces/gallery.html",
        {
            "page": page,
            "q": q,
            "sort": sort,
            "sdk": sdk,
            "tag": tag,
            "sorts": list(SORTS),
            "sdks": spaceconfig.SDKS,
            "query": query.urlencode(),
        },
    )


def readme_html(space: Space) -> str:
    """The README below its front matter, as HTML with nothing that can run."""
    try:
        raw = (
            gitrepo.read_file(space.repo_path, space.head_sha, "README.md", settings.MAX_README_BYTES)
            if space.head_sha
            else None
        )
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        raw = None  # the page still shows the app when the repository went missing
    except gitrepo.TooLarge as exc:
        return nh3.clean(f"<p><em>{exc}: too large to show here.</em></p>")
    if raw is None:
        return ""
    text = spaceconfig.FRONT_MATTER_RE.sub("", raw.decode("utf-8", "replace"), count=1)
    html = markdown.markdown(text, extensions=["fenced_code", "tables", "sane_lists"])
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


def page_context(request, space: Space, tab: str) -> dict:
    user = request.user
    liked = user.is_authenticated and space.like_set.filter(user=user).exists()
    return {
        "space": space,
        "tab": tab,
        "liked": liked,
        "can_write": space.can_write(user),
        # Signed for a private space's reader, so that "Open app" gets past the proxy's check.
        "app_url": space_embed_url(space, user),
        # "Open app" only where an app answers or wakes: not for a failed build or an empty space.
        "app_serves": space.stage in (*LIVE_STAGES, "SLEEPING"),
    }


@space_reader
def space_page(request, space: Space):
    space.record_visit(client_ip(request))
    context = page_context(request, space, "app")
    context.update(
        app_url=space_embed_url(space, request.user),
        allow=ALLOW,
        readme=readme_html(space),
        # Sleeping and stopped spaces are served too: the runner's wake page starts them.
        show_app=space.stage in (*LIVE_STAGES, "SLEEPING", "STOPPED"),
        latest_build=space.own_builds().first(),
        previews=space.deployments.filter(kind="preview").select_related("build"),
    )
    return render(request, "spaces/space.html", context)


@space_reader
def space_files(request, space: Space, path: str = ""):
    path = path.strip("/")
    context = page_context(request, space, "files")
    context.update(path=path, crumbs=_crumbs(path))
    if not space.head_sha:
        context["entries"] = []
        return render(request, "spaces/files.html", context)
    entries = gitrepo.tree_entries(space.repo_path, space.head_sha, path)
    if entries is not None:
        context["entries"] = []
        for n, k, s in entries:
            entry = {"name": n, "kind": k, "size": s, "path": f"{path}/{n}".lstrip("/")}
            if k == "blob" and (pointer := lfs_pointer_of(space, space.head_sha, entry["path"])):
                entry.update(size=pointer[1], lfs=True)
            context["entries"].append(entry)
        return render(request, "spaces/files.html", context)
    try:
        data = gitrepo.read_file(space.repo_path, space.head_sha, path, BLOB_LIMIT)
    except gitrepo.TooLarge:
        context.update(binary=True, size=_blob_size(space, path))  # shown as a size, never read
        return render(request, "spaces/files.html", context)
    if data is None:
        raise Http404
    if pointer := lfs_pointer_of(space, space.head_sha, path):
        context.update(size=pointer[1], lfs=True, binary=True)
        return render(request, "spaces/files.html", context)
    context["size"] = len(data)
    if b"\0" in data[:8000] or len(data) > BLOB_LIMIT:
        context["binary"] = True
    else:
        context["text"] = data.decode("utf-8", "replace")
        context["highlighted"] = highlight_source(path, context["text"])
    return render(request, "spaces/files.html", context)


def highlight_source(path: str, text: str) -> str:
    """The file as highlighted HTML (Pygments escapes it; inline styles, as the CSP allows), or ""
    when no lexer knows the file's name, or it is too long to colour on a page view."""
    if len(text) > HIGHLIGHT_LIMIT:
        return ""
    try:
        lexer = pygments.lexers.get_lexer_for_filename(path.rsplit("/", 1)[-1], stripnl=False)
    except pygments.util.ClassNotFound:
        return ""
    formatter = pygments.formatters.HtmlFormatter(noclasses=True, style="github-dark", nowrap=True)
    return pygments.highlight(text, lexer, formatter)


@space_reader
def space_commits(request, space: Space):
    """The history of the default branch, newest first: the Hub's "History" of a space's files."""
    context = page_context(request, space, "files")
    context["commits"] = commits.history(space.repo_path, space.head_sha, count=100) if space.head_sha else []
    return render(request, "spaces/commits.html", context)


def _blob_size(space: Space, path: str) -> int:
    folder, _, name = path.rpartition("/")
    entries = gitrepo.tree_entries(space.repo_path, space.head_sha, folder) or []
    return next((size for n, _, size in entries if n == name), 0)


def _crumbs(path: str) -> list[tuple[str, str]]:
    parts = [p for p in path.split("/") if p]
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


@space_reader
def space_logs(request, space: Space):
    context = page_context(request, space, "logs")
    builds = list(space.builds.all()[:20])
    # Older builds that still matter stay listed: the one that serves, and pins a paper may cite.
    builds += space.builds.filter(Q(pinned=True) | Q(pk=space.deployed_build_id)).exclude(
        pk__in=[b.pk for b in builds]
    )
    selected = next(
        (b for b in builds if str(b.pk) == request.GET.get("build")), builds[0] if builds else None
    )
    context.update(
        builds=builds,
        build=selected,
        # The builds list, each with its paper link when pinned: the embed page that keeps framing it.
        build_rows=[(b, pinned_embed_page(space, b) if b.pinned else "") for b in builds],
    )
    return render(request, "spaces/logs.html", context)


@space_reader
def space_api(request, space: Space):
    context = page_context(request, space, "api")
    endpoints = gradio_api.app_endpoints(space)
    context.update(
        endpoints=gradio_api.fill(endpoints, space) if endpoints else None,
        site_url=settings.SITE_URL,
        spaces_domain=settings.SPACES_DOMAIN,
    )
    return render(request, "spaces/api.html", context)


@space_reader
def space_embed_code(request, space: Space):
    context = page_context(request, space, "embed")
    context["snippets"] = embed_snippets(space)
    context["deployed"] = space.deployed_build
    context["pins"] = [
        (build, pinned_embed_page(space, build), citation(space, build))
        for build in space.builds.filter(pinned=True).order_by("-created")
    ]
    return render(request, "spaces/embed_code.html", context)


NEW_SPACE_DEFAULTS = {"title": "", "emoji": "🚀", "color_from": "blue", "color_to": "indigo", "sdk": "gradio"}


def _new_space_problem(form: dict) -> str:
    if not valid_name(form["name"]):
        return "Use letters, digits, '-', '_' and '.', starting with a letter or digit."
    if form["visibility"] not in ("public", "private"):
        return "Visibility is public or private."
    if form["sdk"] not in spaceconfig.SDKS:
        return f"The SDK is one of {', '.join(spaceconfig.SDKS)}."
    if form["color_from"] not in spaceconfig.COLORS or form["color_to"] not in spaceconfig.COLORS:
        return f"Colours are {', '.join(spaceconfig.COLORS)}."
    if len(form["title"]) > 200 or not 0 < len(form["emoji"]) <= 8:
        return "A title has at most 200 characters, and the emoji is one emoji."
    return ""


@login_required
def new_space(request):
    """The Hub's new-space form: an empty space to push to, under the user's name or an organization
    where they have write, with its card's look until the first push's README sets it; a first push
    to a new name does the same with the defaults."""
    form = {key: request.POST.get(key, default).strip() for key, default in NEW_SPACE_DEFAULTS.items()}
    form.update(
        name=request.POST.get("name", "").strip(), visibility=request.POST.get("visibility", "public")
    )
    name, visibility = form["name"], form["visibility"]
    allowed = Quota.hardware_allowed(request.user)
    flavours = [f for f in settings.HARDWARE.values() if f.name in allowed]
    hardware = request.POST.get("hardware", settings.HARDWARE_DEFAULT)
    namespaces = writable_namespaces(request.user)
    namespace = request.POST.get("namespace") or request.user.username
    error = ""
    if request.method == "POST":
        account = creatable_namespace(request.user, namespace)
        if problem := _new_space_problem(form):
            error = problem
        elif hardware not in (f.name for f in flavours):
            error = f"Hardware is one of: {', '.join(f.name for f in flavours)} (your hardware quota)."
        elif account is None:
            error = f"You cannot create spaces under {namespace}."
        elif Space.objects.filter(owner=account, name=name).exists():
            error = (
                f"You already have a space named {name}."
                if namespace == request.user.username
                else f"{namespace}/{name} already exists."
            )
        else:
            fields = {key: form[key] for key in NEW_SPACE_DEFAULTS}
            fields["title"] = fields["title"] or name
            try:
                with transaction.atomic():
                    space = Space.create(account, name, visibility=visibility, **fields)
                    if hardware != settings.HARDWARE_DEFAULT:
                        SpaceHardware.request(space, hardware, request.user)
            except QuotaExceeded as exc:
                error = str(exc)
            except IntegrityError:
                error = f"{namespace}/{name} already exists."
            else:
                messages.success(request, "Space created. Push your app to it to build it.")
                return redirect("space", owner=namespace, name=space.name)
    context = {
        **form, "error": error, "sdks": spaceconfig.SDKS, "colors": spaceconfig.COLORS,
        "namespaces": namespaces, "namespace": namespace, "flavours": flavours, "hardware": hardware,
    }  # fmt: skip
    return render(request, "spaces/new.html", context)


@require_POST
def like(request, owner: str, name: str):
    if not request.user.is_authenticated:
        return redirect(f"/login?next=/{owner}/{name}")
    space = readable_space(request, owner, name)
    liked = space.like(request.user) or not space.unlike(request.user)
    if "application/json" in request.headers.get("Accept", ""):
        # The page's script: the count changes in place, and the visitor's input in the app stays.
        space.refresh_from_db(fields=["likes"])
        return JsonResponse({"liked": liked, "likes": space.likes})
    return redirect("space", owner=owner, name=name)


@login_required
@space_reader
def duplicate(request, space: Space):
    """The Hub's Duplicate this Space: the whole history and public variables into the visitor's namespace."""
    name = request.POST.get("name", space.name).strip()
    visibility = request.POST.get("visibility", space.visibility)
    error = ""
    if request.method == "POST":
        if not valid_name(name):
            error = "Use letters, digits, '-', '_' and '.', starting with a letter or digit."
        elif visibility not in ("public", "private"):
            error = "Visibility is public or private."
        elif Space.objects.filter(owner=request.user, name=name).exists():
            error = f"You already have a space named {name}."
        else:
            try:
                copy = space.duplicate(request.user, name, private=visibility == "private")
            except (QuotaExceeded, ValueError) as exc:
                error = str(exc)
            except IntegrityError:
                error = f"You already have a space named {name}."
            else:
                messages.success(request, f"Duplicated {space.full_name}: it builds now.")
                return redirect("space", owner=request.user.username, name=copy.name)
    context = page_context(request, space, "")
    context.update(name=name, visibility=visibility, error=error)
    return render(request, "spaces/duplicate.html", context)


@xframe_options_exempt
@space_reader
def embed(request, space: Space, sha: str = ""):
    """The page a paper's iframe loads: the app alone, unless the author disabled embedding."""
    if space.disable_embedding:
        return render(request, "spaces/embed.html", {"space": space, "disabled": True}, status=403)
    build, url = None, space_embed_url(space, request.user)
    if sha:
        build = space.builds.filter(commit_sha__startswith=sha, state="succeeded").first()
        if build is None or len(sha) < 7:
            raise Http404
        url = pinned_app_url(space, build, request.user)
    theme = request.GET.get("__theme")
    if url and theme in ("light", "dark"):  # Gradio's own switch, passed on to the app
        url = f"{url}{'&' if '?' in url else '?'}__theme={theme}"
    return render(
        request, "spaces/embed.html", {"space": space, "app_url": url, "allow": ALLOW, "build": build}
    )
