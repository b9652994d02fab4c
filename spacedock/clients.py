"""Who is asking: the address a request came from, through the local Caddy."""

LOOPBACK = ("127.0.0.1", "::1")


def client_ip(request) -> str:
    """The visitor's address. Caddy, the only listener people reach, replaces X-Forwarded-For with
    the peer it saw, so the header counts only when the request came from this machine."""
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if peer in LOOPBACK and forwarded:
        return forwarded.rsplit(",", 1)[-1].strip() or peer
    return peer
