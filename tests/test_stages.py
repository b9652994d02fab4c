"""The stage machine, against the database only: every transition from every stage, what each one
means, and that a writer acting on a stage it read earlier cannot undo another's move."""

import subprocess

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from spacedock.spaces import stages
from spacedock.spaces.models import Build, Deployment, Space
from spacedock.spaces.stages import BUILD_STATES, BUILD_TRANSITIONS, STAGES, TRANSITIONS, BuildState
from spacedock.spaces.stages import Stage as S
from tests.conftest import HELLO_APP, HELLO_README, Repo

pytestmark = [pytest.mark.fast, pytest.mark.django_db]

OLD_MESSAGE = "what the stage said before"
QUEUED = "Queued for hardware: t4-small needs 1 GPU(s) (t4) and this machine has none."


@pytest.fixture
def space() -> Space:
    space = Space.objects.create(
        owner=User.objects.create(username="ada"), name="hello", subdomain="ada-hello"
    )
    deployed = Build.objects.create(space=space, commit_sha="a" * 40, state=BuildState.SUCCEEDED, image="i:1")
    Space.objects.filter(pk=space.pk).update(deployed_build=deployed)
    return space


def at(space: Space, stage: str) -> Space:
    """The space in `stage`, as some earlier writer left it (set directly: this is the test's setup)."""
    Space.objects.filter(pk=space.pk).update(stage=stage, stage_message=OLD_MESSAGE)
    space.refresh_from_db()
    return space


def new_build(space: Space, state: str) -> Build:
    return Build.objects.create(space=space, commit_sha="b" * 40, state=state)


# How to call each transition, and the build state it needs (None: a transition of the space alone).
CALLS = {
    "build_queued": (None, lambda space, build: stages.build_queued(space)),
    "config_error": ("queued", lambda space, build: stages.config_error(build, "no sdk")),
    "no_app_file": ("queued", lambda space, build: stages.no_app_file(build, "no app.py")),
    "build_started": ("queued", lambda space, build: stages.build_started(build)),
    "build_succeeded": ("building", lambda space, build: stages.build_succeeded(build, "i:2")),
    "build_failed": ("building", lambda space, build: stages.build_failed(build, "pip failed")),
    "app_starting": (None, lambda space, build: stages.app_starting(space)),
    "hardware_queued": (None, lambda space, build: stages.hardware_queued(space, QUEUED)),
    "app_replacing": (None, lambda space, build: stages.app_replacing(space)),
    "app_lost": (None, lambda space, build: stages.app_lost(space)),
    "app_running": (None, lambda space, build: stages.app_running(space)),
    "app_failed": (None, lambda space, build: stages.app_failed(space, "it crashed")),
    "replacement_failed": (None, lambda space, build: stages.replacement_failed(space, "it crashed")),
    "sleep": (None, lambda space, build: stages.sleep(space)),
    "wake": (None, lambda space, build: stages.wake(space)),
    "pause": (None, lambda space, build: stages.pause(space)),
    "stop": (None, lambda space, build: stages.stop(space)),
}


def apply(space: Space, transition: str, stage: str) -> tuple[bool, Space]:
    build_state, call = CALLS[transition]
    space = at(space, stage)
    build = new_build(space, build_state) if build_state else None
    moved = call(space, build)
    return moved, Space.objects.get(pk=space.pk)


def test_every_transition_has_a_function_and_only_stages():
    assert set(CALLS) == set(TRANSITIONS)
    assert set(stages.LIVE_STAGES) < set(STAGES) and set(stages.ACTIVE_BUILD_STATES) < set(BUILD_STATES)
    for transition, moves in TRANSITIONS.items():
        assert set(moves) <= set(STAGES) and set(moves.values()) <= set(STAGES), transition
        assert moves, transition
    for moves in BUILD_TRANSITIONS.values():
        assert set(moves) | set(moves.values()) <= set(BUILD_STATES)


@pytest.mark.parametrize("transition", sorted(TRANSITIONS))
def test_each_transition_moves_exactly_from_its_row(space, transition):
    """From every stage: an allowed one moves to its target, any other stays, message and all."""
    wrong = []
    for stage in STAGES:
        moved, after = apply(space, transition, stage)
        expected = TRANSITIONS[transition].get(stage, stage)
        allowed = stage in TRANSITIONS[transition]
        if after.stage != expected or (not allowed and after.stage_message != OLD_MESSAGE):
            wrong.append((stage, after.stage, after.stage_message))
        if CALLS[transition][0] is None and moved != allowed:
            wrong.append((stage, "returned", moved))
    assert wrong == [], f"{transition}: {wrong}"


# What the transitions mean, written out on their own (not read from the table): None is refused.
MEANING = [
    ("build_queued", S.RUNNING, S.RUNNING_BUILDING),  # the running app keeps serving while it builds
    ("build_queued", S.SLEEPING, S.BUILDING),
    ("build_queued", S.RUNTIME_ERROR, S.BUILDING),
    ("config_error", S.RUNNING, S.CONFIG_ERROR),
    ("no_app_file", S.BUILDING, S.NO_APP_FILE),
    ("build_started", S.PAUSED, S.BUILDING),
    ("build_started", S.RUNNING_APP_STARTING, S.RUNNING_BUILDING),
    ("build_succeeded", S.RUNNING_BUILDING, S.RUNNING_APP_STARTING),
    ("build_succeeded", S.BUILDING, S.APP_STARTING),
    ("build_succeeded", S.PAUSED, S.APP_STARTING),  # a new build unpauses, as on the Hub
    ("build_failed", S.RUNNING_BUILDING, S.RUNNING),
    ("build_failed", S.BUILDING, S.BUILD_ERROR),
    ("build_failed", S.PAUSED, None),
    ("app_starting", S.RUNTIME_ERROR, S.APP_STARTING),  # a restart after a crash
    ("app_starting", S.STOPPED, S.APP_STARTING),  # a rollback after the build was gone
    ("app_starting", S.BUILDING, None),
    ("app_starting", S.RUNNING_BUILDING, None),
    ("hardware_queued", S.APP_STARTING, S.APP_STARTING),  # a GPU start waits, saying why
    ("hardware_queued", S.RUNTIME_ERROR, S.APP_STARTING),
    ("hardware_queued", S.RUNNING, S.RUNNING),  # the previous flavour's container keeps serving
    ("hardware_queued", S.RUNNING_APP_STARTING, S.RUNNING),
    ("hardware_queued", S.RUNNING_BUILDING, None),
    ("hardware_queued", S.BUILDING, None),
    ("app_replacing", S.RUNNING, S.RUNNING_APP_STARTING),
    ("app_replacing", S.APP_STARTING, None),
    ("app_lost", S.RUNNING, S.APP_STARTING),
    ("app_lost", S.RUNNING_BUILDING, None),  # the old app restarts while the build runs
    ("app_lost", S.RUNTIME_ERROR, None),
    ("app_running", S.APP_STARTING, S.RUNNING),
    ("app_running", S.RUNNING_APP_STARTING, S.RUNNING),
    ("app_running", S.RUNNING, None),  # keeps its message (a newer build failed)
    ("app_running", S.RUNNING_BUILDING, None),
    ("app_running", S.RUNTIME_ERROR, None),
    ("app_running", S.SLEEPING, None),
    ("app_failed", S.APP_STARTING, S.RUNTIME_ERROR),
    ("app_failed", S.RUNNING_BUILDING, S.RUNTIME_ERROR),
    ("app_failed", S.BUILDING, None),
    ("app_failed", S.PAUSED, None),
    ("app_failed", S.SLEEPING, None),
    ("replacement_failed", S.RUNNING_APP_STARTING, S.RUNNING),
    ("replacement_failed", S.RUNNING_BUILDING, S.RUNNING_BUILDING),
    ("replacement_failed", S.APP_STARTING, None),
    ("sleep", S.RUNNING, S.SLEEPING),
    ("sleep", S.RUNNING_BUILDING, None),
    ("sleep", S.APP_STARTING, None),
    ("wake", S.SLEEPING, S.APP_STARTING),
    ("wake", S.STOPPED, None),
    ("wake", S.PAUSED, None),
    ("wake", S.RUNNING, None),
    ("pause", S.RUNNING, S.PAUSED),
    ("pause", S.BUILD_ERROR, S.PAUSED),
    ("pause", S.PAUSED, None),
    ("stop", S.RUNNING, S.STOPPED),
    ("stop", S.RUNNING_BUILDING, S.BUILDING),
    ("stop", S.BUILD_ERROR, None),
    ("stop", S.PAUSED, None),
]


@pytest.mark.parametrize("transition, before, after", MEANING)
def test_what_each_transition_means(space, transition, before, after):
    _, space = apply(space, transition, before)
    assert space.stage == (after or before)
    if after is None:
        assert space.stage_message == OLD_MESSAGE


def test_messages_say_what_happened(space):
    _, failed = apply(space, "build_failed", S.BUILDING)
    assert failed.stage_message == "pip failed"
    _, still = apply(space, "build_failed", S.RUNNING_BUILDING)
    assert still.stage_message == "The build of bbbbbbb failed: pip failed"
    _, replaced = apply(space, "replacement_failed", S.RUNNING_APP_STARTING)
    assert replaced.stage_message.startswith("The new version did not start, the previous one still runs.")
    _, running = apply(space, "app_running", S.APP_STARTING)
    assert running.stage_message == ""
    _, queued = apply(space, "hardware_queued", S.APP_STARTING)
    assert queued.stage_message == QUEUED


def test_waiting_for_hardware_pass_after_pass_writes_once(space):
    """The runner asks place() on every pass while a space waits: the row (and its stage webhook)
    changes once, not once a pass."""
    at(space, S.APP_STARTING)
    assert stages.hardware_queued(space, QUEUED)
    assert not stages.hardware_queued(space, QUEUED) and not stages.hardware_queued(space, QUEUED)
    assert Space.objects.get(pk=space.pk).stage_message == QUEUED


def test_wake_needs_an_unpaused_space_with_a_build(space):
    at(space, S.SLEEPING)
    Space.objects.filter(pk=space.pk).update(paused=True)
    assert not stages.wake(space)
    Space.objects.filter(pk=space.pk).update(paused=False, deployed_build=None)
    assert not stages.wake(space)
    assert Space.objects.get(pk=space.pk).stage == S.SLEEPING
    Space.objects.filter(pk=space.pk).update(deployed_build=space.builds.get(state=BuildState.SUCCEEDED))
    assert stages.wake(space)
    space = Space.objects.get(pk=space.pk)
    assert space.stage == S.APP_STARTING and space.last_request_at is not None


def test_a_writer_acting_on_what_it_read_earlier_changes_nothing(space):
    """The runner reads RUNNING and decides the space is idle; meanwhile a push starts a build."""
    seen_by_runner = at(space, S.RUNNING)
    assert stages.build_queued(Space.objects.get(pk=space.pk))
    assert seen_by_runner.stage == S.RUNNING  # its copy is stale
    assert not stages.sleep(seen_by_runner)
    assert not stages.app_running(seen_by_runner)
    assert Space.objects.get(pk=space.pk).stage == S.RUNNING_BUILDING


@pytest.mark.parametrize("transition", sorted(BUILD_TRANSITIONS))
def test_build_states_move_exactly_from_their_row(space, transition):
    for state in BUILD_STATES:
        build = new_build(space, state)
        moved = stages.move_build(build, transition)
        assert moved == (state in BUILD_TRANSITIONS[transition]), (transition, state)
        assert build.state == BUILD_TRANSITIONS[transition].get(state, state), (transition, state)


def test_a_cancelled_build_neither_starts_nor_moves_the_space(space):
    at(space, S.CONFIG_ERROR)  # a newer push with a broken README cancelled it
    build = new_build(space, BuildState.CANCELLED)
    assert not stages.build_started(build)
    assert not stages.build_succeeded(build, "i:3") and not stages.build_failed(build, "late")
    space.refresh_from_db()
    assert space.stage == S.CONFIG_ERROR and space.deployed_build.image == "i:1"


def test_a_succeeded_build_is_what_should_run(space):
    at(space, S.PAUSED)
    Space.objects.filter(pk=space.pk).update(paused=True)
    build = new_build(space, BuildState.BUILDING)
    assert stages.build_succeeded(build, "i:2")
    space.refresh_from_db()
    assert space.deployed_build == build and build.image == "i:2" and not space.paused
    assert build.finished is not None


def test_cancel_builds_leaves_finished_ones(space):
    queued, building = new_build(space, BuildState.QUEUED), new_build(space, BuildState.BUILDING)
    failed = new_build(space, BuildState.FAILED)
    assert stages.cancel_builds(space, "superseded by 1234567") == 2
    for build in (queued, building, failed):
        build.refresh_from_db()
    assert queued.state == building.state == BuildState.CANCELLED
    assert queued.error == "superseded by 1234567" and failed.state == BuildState.FAILED
    assert space.builds.get(state=BuildState.SUCCEEDED).image == "i:1"


def test_a_push_reads_the_config_once_into_its_build(tmp_path, monkeypatch):
    """Each build keeps the config of its own commit; the space's fields follow the head."""
    monkeypatch.setattr(settings, "REPOS_DIR", tmp_path / "repos")
    dispatched = []
    monkeypatch.setattr(Build, "dispatch", lambda build: dispatched.append(build.pk))
    space = Space.create(User.objects.create(username="bo"), "ports")
    repo = Repo(tmp_path / "work")

    def push(files: dict) -> Build:
        sha = repo.write(files).commit()
        subprocess.run(["git", "-C", str(repo.path), "push", "-q", str(space.repo_path), "main"], check=True)
        return space.record_push(sha, "refs/heads/main")

    first = push({"README.md": HELLO_README, "app.py": HELLO_APP})
    readme = HELLO_README.replace(
        "app_file: app.py", "app_file: app.py\napp_port: 8000\nstartup_duration_timeout: 2m"
    )
    second = push({"README.md": readme})
    broken = push({"README.md": "---\nsdk: cobol\n---\n"})
    first.refresh_from_db()
    second.refresh_from_db()
    space.refresh_from_db()

    assert first.config["app_port"] == 7860 and first.space_config().startup_duration_timeout == 1800
    assert second.space_config().app_port == 8000 and second.config["startup_duration_timeout"] == 120
    assert (first.state, second.state) == (BuildState.CANCELLED, BuildState.CANCELLED)
    assert broken.state == BuildState.FAILED and broken.config == {} and "cobol" in broken.error
    assert space.stage == S.CONFIG_ERROR and "cobol" in space.stage_message
    assert space.app_port == 8000  # the last good config: what the pages show
    assert dispatched == [first.pk, second.pk]

    # A build made without a push (a row from before builds carried their config) runs as the head says.
    bare = Build.objects.create(space=space, commit_sha=second.commit_sha)
    assert bare.space_config().app_port == 8000


def test_a_branch_builds_its_preview_and_never_moves_the_space(tmp_path, monkeypatch):
    """A push to another branch queues a build whose stages move the branch's preview; its success is
    what the preview serves, while the space serves its own build and keeps its card; deleting the
    branch cancels its build, removes the preview and asks for its images to be pruned."""
    monkeypatch.setattr(settings, "REPOS_DIR", tmp_path / "repos")
    monkeypatch.setattr(settings, "IMAGES_KEPT", 1)
    dispatched, pruned = [], []
    monkeypatch.setattr(Build, "dispatch", lambda build: dispatched.append(build.pk))
    monkeypatch.setattr(Space, "request_prune", lambda space: pruned.append(space.pk))
    space = Space.create(User.objects.create(username="bo"), "ports")
    repo = Repo(tmp_path / "work")

    def push(branch: str, files: dict) -> Build:
        sha = repo.write(files).commit()
        subprocess.run(
            ["git", "-C", str(repo.path), "push", "-q", str(space.repo_path), f"HEAD:{branch}"], check=True
        )
        return space.record_push(sha, f"refs/heads/{branch}")

    main = push(
        "main", {"README.md": HELLO_README.replace("title: Hello", "title: Main"), "app.py": HELLO_APP}
    )
    assert stages.build_started(main) and stages.build_succeeded(main, "i:main")
    space.refresh_from_db()
    assert (space.stage, space.deployed_build) == (S.APP_STARTING, main)
    Space.objects.filter(pk=space.pk).update(stage=S.RUNNING)

    repo.git("checkout", "-q", "-b", "try")
    branch = push("try", {"README.md": HELLO_README.replace("title: Hello", "title: Branch")})
    preview = Deployment.objects.get(space=space, kind="preview")
    assert (preview.branch, preview.label, preview.stage) == ("try", "bo-ports--try", S.BUILDING)
    assert branch.preview() == preview and main.preview() is None
    assert dispatched == [main.pk, branch.pk]
    main.refresh_from_db()
    space.refresh_from_db()
    assert main.state == BuildState.SUCCEEDED and space.stage == S.RUNNING and space.title == "Main"

    assert stages.build_started(branch) and stages.build_succeeded(branch, "i:try")
    preview.refresh_from_db()
    space.refresh_from_db()
    assert (preview.stage, preview.build) == (S.APP_STARTING, branch)
    assert (space.stage, space.deployed_build) == (S.RUNNING, main)  # the space serves main still
    assert space.images_kept() == {"i:main", "i:try"}

    broken = push("try", {"README.md": "---\nsdk: cobol\n---\n"})
    preview.refresh_from_db()
    space.refresh_from_db()
    assert (
        broken.state == BuildState.FAILED
        and preview.stage == S.CONFIG_ERROR
        and "cobol" in preview.stage_message
    )
    assert space.stage == S.RUNNING and space.stage_message == ""

    late = push("try", {"README.md": HELLO_README})
    assert Deployment.branch_deleted(space, "try")
    late.refresh_from_db()
    assert late.state == BuildState.CANCELLED and "the branch try was deleted" in late.error
    assert not Deployment.objects.filter(space=space).exists() and pruned == [space.pk]
    # A build of the deleted branch that finishes anyway moves nothing, and its image is not kept.
    assert space.images_kept() == {"i:main"}
    assert not Deployment.branch_deleted(space, "try")


def test_a_deployment_moves_through_the_same_transitions_alone(space):
    build = space.builds.get()
    build.pin()
    pin = Deployment.objects.get(kind="pin", build=build)
    assert (pin.label, pin.stage) == (f"pin--{build.pk}", S.SLEEPING)
    at(space, S.SLEEPING)
    assert stages.wake(pin) and pin.stage == S.APP_STARTING and pin.last_request_at is not None
    assert stages.app_running(pin) and stages.sleep(pin) and pin.stage == S.SLEEPING
    assert Space.objects.get(pk=space.pk).stage == S.SLEEPING
    Deployment.objects.filter(pk=pin.pk).update(build=None)
    assert not stages.wake(pin)  # nothing to run: it stays asleep
    build.unpin()
    assert not Deployment.objects.exists()
