"""GPU check: a GPU space end to end on a running Spacedock, by hand, on a machine with an NVIDIA GPU
and the NVIDIA container toolkit. Not part of `make test` or `make bench` (no GPU there).

    .venv/bin/python bench/gpu_check.py --endpoint http://localhost:8080 --token <write token> \\
        [--flavour t4-small] [--model-mb 500] [--torch]

What it does, through huggingface_hub as a user would:
1. makes a bucket `<you>/gpu-check` and a Gradio space `<you>/gpu-check` whose app, at start, reads
   a "model" (`--model-mb` of random bytes) from `/data/model.bin`, writing it first when the bucket
   does not have it (a first download), and answers with `nvidia-smi -L`, `torch.cuda.is_available()`
   (with `--torch`: torch is installed in the image, several GB) and how long the load took;
2. mounts the bucket at `/data` and asks for `--flavour`;
3. waits for RUNNING (or reports "Queued for hardware" and exits 2), checks that
   `hardware.current` is the flavour, and calls the app;
4. pauses and restarts it: the wake time (restart until the app answers) with the model loaded from
   `/data`, not written again.

Run it with the operator's settings giving the user the flavour (SPACEDOCK_QUOTA_HARDWARE or the
user's quota in /admin/). The last line of output is one JSON object in bench/README.md's shape;
the exit status is 0 only when the app saw a GPU.
"""

import argparse
import json
import sys
import time

from huggingface_hub import HfApi, Volume

APP = """import os, subprocess, time
import gradio as gr

MODEL = "/data/model.bin"
started = time.monotonic()
cached = os.path.exists(MODEL) and os.path.getsize(MODEL) == int(os.environ["MODEL_MB"]) * 2**20
if not cached:
    with open(MODEL + ".part", "wb") as out:
        for _ in range(int(os.environ["MODEL_MB"])):
            out.write(os.urandom(2**20))
    os.replace(MODEL + ".part", MODEL)
with open(MODEL, "rb") as weights:
    while weights.read(1 << 24):
        pass
load_seconds = time.monotonic() - started


def report():
    try:
        smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except OSError as exc:
        smi = f"no nvidia-smi: {exc}"
    try:
        import torch
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = None
    return {"nvidia_smi": smi.strip(), "torch_cuda": cuda, "model_from_data": cached,
            "load_seconds": round(load_seconds, 2), "hf_home": os.environ.get("HF_HOME"),
            "hardware": os.environ.get("SPACE_HARDWARE")}


gr.Interface(report, None, "json").launch()
"""


def wait_for(api: HfApi, repo: str, stages: tuple[str, ...], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runtime = api.get_space_runtime(repo)
        message = runtime.raw.get("errorMessage") or ""
        if runtime.stage in stages:
            return runtime.stage
        if message.startswith("Queued for hardware"):
            print(message)
            print(json.dumps({"benchmark": "gpu", "figures": [], "note": message}))
            sys.exit(2)
        if runtime.stage in ("BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR"):
            sys.exit(f"{repo} is {runtime.stage}: {message}")
        time.sleep(1)
    sys.exit(f"{repo} did not reach {stages} in {seconds:.0f} s")


def call_app(host: str, seconds: float) -> tuple[dict, float]:
    from gradio_client import Client

    started, deadline = time.monotonic(), time.monotonic() + seconds
    while True:
        try:
            return Client(host, verbose=False).predict(api_name="/report"), time.monotonic() - started
        except Exception:  # noqa: BLE001 (the wake page or a starting app: try again)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--flavour", default="t4-small")
    parser.add_argument("--model-mb", type=int, default=500)
    parser.add_argument("--torch", action="store_true", help="install torch in the image (large)")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    api = HfApi(endpoint=args.endpoint, token=args.token)
    user = api.whoami()["name"]
    repo = f"{user}/gpu-check"
    api.create_bucket(repo, exist_ok=True)
    api.create_repo(repo, repo_type="space", space_sdk="gradio", exist_ok=True)
    api.add_space_variable(repo, "MODEL_MB", str(args.model_mb))
    api.set_space_volumes(repo, [Volume(type="bucket", source=repo, mount_path="/data")])
    api.request_space_hardware(repo, args.flavour)
    readme = f"---\ntitle: GPU check\nsdk: gradio\nsuggested_hardware: {args.flavour}\n---\n"
    for path, content in (
        ("README.md", readme),
        ("app.py", APP),
        ("requirements.txt", "torch\n" if args.torch else ""),
    ):
        api.upload_file(path_or_fileobj=content.encode(), path_in_repo=path, repo_id=repo, repo_type="space")

    started = time.monotonic()
    wait_for(api, repo, ("RUNNING",), args.timeout)
    first_live = time.monotonic() - started
    runtime = api.get_space_runtime(repo)
    if runtime.hardware != args.flavour:
        sys.exit(
            f"hardware.current is {runtime.hardware!r}, not {args.flavour!r}: the runner did not start the "
            "space on its flavour (docs/architecture.md, 'Hardware and volumes')"
        )
    host = api.space_info(repo).host
    first, _ = call_app(host, 120)
    print("first start:", json.dumps(first))

    api.pause_space(repo)
    wait_for(api, repo, ("PAUSED",), 120)
    woke = time.monotonic()
    api.restart_space(repo)
    second, _ = call_app(host, args.timeout)
    wake = time.monotonic() - woke
    print("after a wake:", json.dumps(second))

    saw_gpu = bool(second["nvidia_smi"].startswith("GPU ")) or bool(second["torch_cuda"])
    figures = [
        {"name": "push to live, first start incl. build (s)", "value": round(first_live, 1)},
        {"name": f"wake with a {args.model_mb} MB model from /data (s)", "value": round(wake, 2)},
        {"name": "model load inside the app after the wake (s)", "value": second["load_seconds"]},
    ]
    note = (
        f"{args.flavour}: nvidia-smi says {second['nvidia_smi']!r}; torch.cuda.is_available()="
        f"{second['torch_cuda']}; model read from /data after the wake: {second['model_from_data']}"
    )
    print(note)
    print(json.dumps({"benchmark": "gpu", "figures": figures, "note": note}))
    sys.exit(0 if saw_gpu and second["model_from_data"] else 1)


if __name__ == "__main__":
    main()
