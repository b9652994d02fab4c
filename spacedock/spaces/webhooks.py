"""Webhooks: an owner's URL gets a signed JSON POST when the space is pushed to, a build ends, or
its stage changes. Payloads follow the Hub's shape (`event {action, scope}`, `repo`, `webhook`,
`updatedRefs`) where it fits; the scopes that the Hub has no name for are Spacedock's
(`space.build`, `space.runtime`).

Each event is a WebhookDelivery row, sent by the worker (task spacedock.spaces.tasks.deliver)
after the transaction that caused it commits, tried SPACEDOCK_WEBHOOK_ATTEMPTS times with
growing waits, and listed on the settings page. The body is signed with the webhook's secret:
`X-Webhook-Signature: sha256=<hex HMAC of the body>`.

The platform sends these requests itself, so a URL may only name a public address: one that
resolves to loopback, private, link-local (cloud metadata) or other reserved ranges is refused
when it is saved and again when it is sent, unless SPACEDOCK_WEBHOOK_ALLOW lets that network
through; the connection goes to the address that was checked, and redirects are not followed.
"""

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from spacedock.celery import app as celery_app

DELIVER_TASK = "spacedock.spaces.tasks.deliver"
EVENTS = ("push", "build", "stage")
TIMEOUT = 10


class WebhookRefused(ValueError):
    """A URL the platform will not send to; the message says why."""


def _allowed(address: ipaddress._BaseAddress) -> bool:
    for network in settings.WEBHOOK_ALLOW:
        if address in ipaddress.ip_network(network, strict=False):
            return True
    return address.is_global and not address.is_multicast


def resolve(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, address to connect to) for a URL the platform may send to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused("A webhook URL starts with http:// or https:// and names a host.")
    if parts.username or parts.password:
        raise WebhookRefused("A webhook URL cannot carry a user name or password.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WebhookRefused(f"{parts.hostname} does not resolve.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses or not all(_allowed(a) for a in addresses):
        raise WebhookRefused(
            f"{parts.hostname} resolves to {', '.join(sorted({str(a) for a in addresses}))}, which is not a "
            "public address: webhooks go to the internet only."
        )
    return parts.scheme, parts.hostname, port, str(addresses[0])


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to by now."""

    def __init__(self, address: str, host: str, port: int):
        super().__init__(host, port, timeout=TIMEOUT)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """The same over TLS: the certificate and SNI are checked for the name."""

    def __init__(self, address: str, host: str, port: int):
        super().__init__(host, port, timeout=TIMEOUT, context=ssl.create_default_context())
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """Sends to the checked address and returns the status; no redirect is followed. Raises
    WebhookRefused or OSError."""
    scheme, host, port, address = resolve(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = (_PinnedHTTPS if scheme == "https" else _PinnedHTTP)(address, host, port)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(4096)  # a little, never all of a hostile answer
        return response.status
    finally:
        conn.close()


def _repo(space) -> dict:
    return {
        "type": "space",
        "name": space.full_name,
        "id": str(space.pk),
        "private": space.is_private,
        "headSha": space.head_sha,
        "url": {"web": f"{settings.SITE_URL}/{space.full_name}",
                "api": f"{settings.SITE_URL}/api/spaces/{space.full_name}"},
        "owner": {"id": str(space.owner_id), "name": space.owner.username},
    }  # fmt: skip


def _record(space, event: str, scope: str, extra: dict) -> None:
    """A delivery for each of the space's webhooks that wants `event`, sent after the commit."""
    from spacedock.spaces.models import Webhook, WebhookDelivery

    hooks = [hook for hook in Webhook.objects.filter(space_id=space.pk, active=True) if event in hook.events]
    for hook in hooks:
        payload = {
            "event": {"action": "update", "scope": scope},
            "repo": _repo(space),
            "webhook": {"id": str(hook.pk), "version": 3},
            **extra,
        }
        delivery = WebhookDelivery.objects.create(webhook=hook, event=event, payload=payload)
        transaction.on_commit(lambda pk=delivery.pk: celery_app.send_task(DELIVER_TASK, args=[pk]))


def pushed(space, ref: str, old_sha: str, new_sha: str) -> None:
    _record(
        space,
        "push",
        "repo.content",
        {"updatedRefs": [{"ref": ref, "oldSha": old_sha or None, "newSha": new_sha}]},
    )


def build_finished(build) -> None:
    space = build.space
    _record(space, "build", "space.build", {"build": {
        "id": build.pk, "commit": build.commit_sha, "state": build.state, "error": build.error,
    }})  # fmt: skip


def stage_changed(space_id: int) -> None:
    from spacedock.spaces.models import Space, Webhook

    if not Webhook.objects.filter(space_id=space_id, active=True).exists():
        return
    space = Space.objects.select_related("owner").get(pk=space_id)
    _record(
        space,
        "stage",
        "space.runtime",
        {"runtime": {"stage": space.stage, "errorMessage": space.stage_message or None}},
    )


def body_of(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
