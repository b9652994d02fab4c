"""The platform's paths that Caddy calls; runner/caddy.py writes them into Caddy's config."""

# Every request to a space whose app is not serving, with the visitor's path appended.
WAKE_PREFIX = "/_runner/wake"
# Caddy's forward_auth before a private space's app: may this visitor see it?
AUTH_PATH = "/_runner/auth"
# Caddy's on-demand TLS, before it asks a CA for a certificate: is this name served here?
TLS_ASK_PATH = "/tls/ask"
