"""The runtime benchmark in the embedded default: `make up` with nothing set (SQLite, Celery's
filesystem broker, the runner nudged over a local socket), for the report beside the same figures
with Postgres and Redis (bench_runtime.py with DATABASE_URL and REDIS_URL set).

    .venv/bin/python bench/bench_runtime_embedded.py [--rounds 5] [--seconds 8]
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    script = Path(__file__).resolve().parent / "bench_runtime.py"
    os.execve(sys.executable, [sys.executable, str(script), *sys.argv[1:]], env)
