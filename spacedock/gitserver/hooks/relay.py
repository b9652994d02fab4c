"""git's pre- and post-receive hooks: hand git's input to the web process serving this push
(spacedock/gitserver/receive.py) and print its answer, which git shows as "remote:" lines.

Run as `python -I -S relay.py <hook>`: the standard library only, so it starts in milliseconds.
"""

import json
import os
import socket
import sys

QUARANTINE_ENV = ("GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES")


def main() -> int:
    hook = sys.argv[1]
    request = {
        "hook": hook,
        # Ref names are bytes to git: whatever the locale, they go through as they came.
        "stdin": sys.stdin.buffer.read().decode("utf-8", "surrogateescape"),
        "env": {key: os.environ[key] for key in QUARANTINE_ENV if key in os.environ},
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(os.environ["SPACEDOCK_HOOK_SOCKET"])
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            data = bytearray()
            while chunk := sock.recv(65536):
                data += chunk
        answer = json.loads(data)
    except (KeyError, OSError, ValueError) as exc:
        print(f"Spacedock: the {hook} hook could not reach the server ({exc}).", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(answer.get("out", "").encode("utf-8", "surrogateescape"))
    sys.stderr.buffer.write(answer.get("err", "").encode("utf-8", "surrogateescape"))
    return int(answer.get("code", 1))


if __name__ == "__main__":
    sys.exit(main())
