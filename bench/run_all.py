"""Runs every benchmark in bench/ and writes bench/results/report.md with a plot.

    .venv/bin/python bench/run_all.py                 # every bench/bench_*.py
    .venv/bin/python bench/run_all.py gallery build   # some of them (the others' last results stay)
    make bench

Each benchmark is a script whose last line of standard output is one JSON object (see
bench/README.md). This script runs them one after another (they measure the machine, so
never two at once), keeps each one's full output in bench/results/<name>.log, and writes
the report: every figure next to its target, the ratio, and whether it meets it.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
TARGET_RE = re.compile(r"^\s*(<=|>=|<|>|==)\s*([0-9.]+)\s*$")


def parse_target(target: str | None) -> tuple[str, float] | None:
    match = TARGET_RE.match(target or "")
    return (match[1], float(match[2])) if match else None


def judge(value: float, target: str | None) -> tuple[float | None, bool | None]:
    """(ratio of value to the target's bound, whether the target is met)."""
    parsed = parse_target(target)
    if parsed is None or parsed[1] == 0:
        return None, None
    op, bound = parsed
    met = {
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
        "==": value == bound,
    }
    return value / bound, met[op]


def last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def run(script: Path, timeout: float) -> dict:
    name = script.stem.removeprefix("bench_")
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        stdout, stderr, code = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr, code = f"timed out after {timeout:.0f} s", -1
    took = time.monotonic() - started
    (RESULTS / f"{name}.log").write_text(
        f"$ {script.name}  (exit {code}, {took:.0f} s)\n{stdout}\n--- stderr\n{stderr}"
    )
    result = last_json(stdout) if code == 0 else None
    if result is None:
        return {"benchmark": name, "error": f"exit {code}; no JSON result (see {name}.log)", "seconds": took}
    result.setdefault("benchmark", name)
    result["seconds"] = took
    return result


def machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    docker = subprocess.run(
        ["/usr/bin/docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    db = "Postgres" if os.getenv("DATABASE_URL", "").startswith("postgres") else "SQLite"
    python = platform.python_version()
    docker = docker or "?"
    host = f"{platform.node()}: {platform.machine()}, {cpus} CPUs{mem}"
    return f"{host}, Python {python}, Docker {docker}, {db}"


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


# Benchmarks that measure the same figures in two setups, shown in one table: (title, left, right).
PAIRS = [("runtime: Postgres and Redis beside the embedded default", "runtime", "runtime_embedded")]


def side_by_side(results: list[dict]) -> list[str]:
    by_name = {r.get("benchmark"): r for r in results if "error" not in r}
    lines = []
    for title, left, right in PAIRS:
        if left not in by_name or right not in by_name:
            continue
        theirs = {f["name"]: f["value"] for f in by_name[right].get("figures", [])}
        lines += [
            f"## {title}",
            "",
            f"| figure | {left} | {right} | {right} / {left} |",
            "| --- | ---: | ---: | ---: |",
        ]
        for figure in by_name[left].get("figures", []):
            if figure["name"] in theirs:
                mine, other = figure["value"], theirs[figure["name"]]
                ratio = fmt(other / mine) if mine else ""
                lines.append(f"| {figure['name']} | {fmt(mine)} | {fmt(other)} | {ratio} |")
        lines += ["", f"(each column from its own section below, run at {by_name[left].get('when', '?')} and "
                  f"{by_name[right].get('when', '?')})", ""]  # fmt: skip
    return lines


def report(results: list[dict], plot: Path | None) -> str:
    lines = [
        "# Spacedock benchmarks",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}.",
        "",
        "Ratio is the measured value over the target's bound: below 1 is better for a `<` target,",
        "above 1 for a `>` target. Each figure is a median unless its name says otherwise.",
        "",
    ]
    if plot:
        lines += [f"![measured against target]({plot.name})", ""]
    lines += side_by_side(results)
    for result in results:
        lines += [f"## {result['benchmark']}", ""]
        if "error" in result:
            lines += [f"**Did not run to the end:** {result['error']}", ""]
            continue
        if result.get("note"):
            lines += [result["note"], ""]
        lines += ["| figure | measured | target | ratio | met |", "| --- | ---: | ---: | ---: | :---: |"]
        for figure in result.get("figures", []):
            ratio, met = judge(figure["value"], figure.get("target"))
            mark = "" if met is None else ("yes" if met else "**no**")
            target = figure.get("target") or ""
            shown = fmt(ratio) if ratio else ""
            lines.append(f"| {figure['name']} | {fmt(figure['value'])} | {target} | {shown} | {mark} |")
        when = f", {result['when']}" if result.get("when") else ""
        log = f"`{result['benchmark']}.log`"
        lines += ["", f"({result['seconds']:.0f} s to run{when}; full output in {log})", ""]
    return "\n".join(lines) + "\n"


def draw(results: list[dict], path: Path) -> Path | None:
    """One horizontal bar per figure with a target: measured / target, the target at 1."""
    rows = []
    for result in results:
        for figure in result.get("figures", []):
            ratio, met = judge(figure["value"], figure.get("target"))
            if ratio is not None:
                rows.append((f"{result['benchmark']}: {figure['name']}", ratio, met))
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.2))
    labels = [r[0] for r in rows]
    ax.barh(labels, [r[1] for r in rows], color=["#2a9d8f" if r[2] else "#e76f51" for r in rows])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("measured / target  (green: target met)")
    ax.invert_yaxis()
    for i, row in enumerate(rows):
        ax.text(row[1], i, f" {row[1]:.2f}", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="benchmark names (bench_<name>.py); default: all")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    scripts = sorted(BENCH.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    # Running some of them keeps the others' last results in the report (each section says when).
    kept = RESULTS / "results.json"
    results = json.loads(kept.read_text()) if args.only and kept.exists() else []
    for script in scripts:
        print(f"running {script.name} ...", flush=True)
        result = run(script, args.timeout)
        result["when"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        results = [r for r in results if r.get("benchmark") != result["benchmark"]] + [result]
        print(f"  {json.dumps(result)[:300]}", flush=True)
    results.sort(key=lambda r: r.get("benchmark", ""))
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot = draw(results, RESULTS / "report.png")
    (RESULTS / "report.md").write_text(report(results, plot))
    print(f"wrote {RESULTS / 'report.md'}")


if __name__ == "__main__":
    main()
