"""Spacedock as the OpenID provider of its spaces ("Sign in with", hf_oauth: true), the way
Gradio's Hub integration (gradio/oauth.py, with authlib) uses the Hub's.

- Every space gets the Hub's variables (Space.env): OAUTH_CLIENT_ID (its subdomain, fixed at
  creation), OAUTH_CLIENT_SECRET (derived from the secret key: nothing stored), OAUTH_SCOPES,
  OPENID_PROVIDER_URL. Gradio needs them whenever an app has a gr.LoginButton, or it does not
  start; a space without hf_oauth: true is refused at the authorize step, with the fix.
- authlib reads /.well-known/openid-configuration, sends the browser to /oauth/authorize (on the
  site's address even when the server asked elsewhere: browser_base), then from the app's server
  trades the code at /oauth/token and checks the ID token (RS256, against
  /oauth/jwks): the ID token's claims become gr.OAuthProfile (name, preferred_username, profile,
  picture). The access token is an AccessToken of scope "oauth": it answers whoami and
  /oauth/userinfo, reads nothing, and ends (hf_oauth_expiration_minutes).
- A redirect goes only to the space's own host. Gradio always asks for
  https://<SPACE_HOST>/login/callback; on a platform served over http (SPACEDOCK_SCHEME) the
  browser is sent there over http, with the platform's port when the address names none.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from spacedock.accounts.models import OAUTH_SCOPE, AccessToken, OAuthCode, hash_token

CODE_SECONDS = 60
# What an app may ask for and get: who the user is. Other Hub scopes are accepted and not granted.
GRANTED_SCOPES = ("openid", "profile", "email")
DEFAULT_SCOPES = "openid profile"


class OAuthError(Exception):
    """An OAuth error answer: `error` is the RFC 6749 code, the message says what to fix."""

    def __init__(self, error: str, message: str, status: int = 400):
        super().__init__(message)
        self.error, self.message, self.status = error, message, status


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_id(space) -> str:
    return space.subdomain


def client_secret(space) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"oauth-client:{space.subdomain}".encode(), hashlib.sha256
    )
    return "sd_oauth_" + digest.hexdigest()


def scopes(config) -> str:
    """OAUTH_SCOPES as the Hub writes it: openid profile, then the README's hf_oauth_scopes."""
    wanted = DEFAULT_SCOPES.split() + [s for s in config.hf_oauth_scopes if s not in DEFAULT_SCOPES.split()]
    return " ".join(wanted)


def env(space, config) -> dict[str, str]:
    """The Hub's OAuth variables for a space's container."""
    return {
        "OAUTH_CLIENT_ID": client_id(space),
        "OAUTH_CLIENT_SECRET": client_secret(space),
        "OAUTH_SCOPES": scopes(config),
        "OPENID_PROVIDER_URL": (settings.OAUTH_PROVIDER_URL or settings.SITE_URL).rstrip("/"),
    }


def _private_key() -> rsa.RSAPrivateKey:
    """The signing key, made once and kept in the data folder (readable by the platform alone)."""
    path = settings.OAUTH_KEY_FILE
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        try:
            os.link(temp, path)  # the first writer wins; a racing one reads the winner's key
        except FileExistsError:
            pass
        temp.unlink()
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _uint(number: int) -> str:
    return _b64(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def jwks() -> dict:
    public = _private_key().public_key().public_numbers()
    return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": _kid(), "n": _uint(public.n),
                      "e": _uint(public.e)}]}  # fmt: skip


def _kid() -> str:
    public = (
        _private_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(public).hexdigest()[:16]


def sign(claims: dict) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": _kid()}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _private_key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def browser_base(issuer: str) -> str:
    """Where the browser signs in. A space's server may reach the platform at an address of its
    own (SPACEDOCK_OAUTH_PROVIDER_URL, e.g. the spaces' bridge gateway), one the browser cannot
    use and where it has no session: asked there, the authorize step is the site's."""
    provider = settings.OAUTH_PROVIDER_URL.rstrip("/")
    return settings.SITE_URL.rstrip("/") if provider and issuer == provider else issuer


def discovery(issuer: str) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{browser_base(issuer)}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(GRANTED_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "name", "preferred_username", "profile", "picture", "email"],
    }


def space_for_client(cid: str):
    from spacedock.spaces.models import Space

    space = (
        Space.objects.select_related("owner", "deployed_build").filter(subdomain=cid).first() if cid else None
    )
    if space is None:
        raise OAuthError("invalid_client", f"No space has the client id {cid!r}.", 401)
    return space


def check_enabled(space) -> None:
    build = space.deployed_build
    if build is None or not build.space_config().hf_oauth:
        raise OAuthError(
            "unauthorized_client",
            f"{space.full_name} has not turned on sign-in: its README.md front matter needs hf_oauth: true.",
        )


def check_redirect(space, redirect_uri: str) -> str:
    """The address the browser is sent back to: on the space's own host only."""
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() != space.host.lower():
        raise OAuthError("invalid_request", f"redirect_uri must be on the space's own host, {space.host}.")
    netloc = parts.netloc if parts.port else parts.netloc + settings.PORT_SUFFIX
    scheme = parts.scheme if settings.SCHEME == "https" else "http"
    return urlunsplit((scheme, netloc, parts.path, parts.query, ""))


def grant(user: User, space, redirect_uri: str, scope: str, state: str, nonce: str, challenge: str) -> str:
    """Records a code for `user` and returns where the browser goes with it."""
    target = check_redirect(space, redirect_uri)
    code = secrets.token_urlsafe(32)
    OAuthCode.objects.create(
        digest=hash_token(code), user=user, space=space, redirect_uri=redirect_uri, scope=scope[:200],
        nonce=nonce[:200], code_challenge=challenge[:128],
        expires=timezone.now() + timedelta(seconds=CODE_SECONDS),
    )  # fmt: skip
    query = urlencode({"code": code, **({"state": state} if state else {})})
    return f"{target}{'&' if '?' in target else '?'}{query}"


def _granted(scope: str) -> str:
    return " ".join(s for s in scope.split() if s in GRANTED_SCOPES) or DEFAULT_SCOPES


def claims(user: User, scope: str) -> dict:
    data = {
        "sub": str(user.pk),
        "name": user.get_full_name() or user.username,
        "preferred_username": user.username,
        "profile": f"{settings.SITE_URL}/{user.username}",
        "picture": "",
    }
    if "email" in scope.split() and user.email:
        data["email"] = user.email
    return data


def exchange(space, code: str, redirect_uri: str, verifier: str, issuer: str) -> dict:
    """The token answer for a code: once, within its minute, for the space and address it was made for."""
    with transaction.atomic():
        row = (
            OAuthCode.objects.select_for_update()
            .select_related("user")
            .filter(digest=hash_token(code))
            .first()
        )
        if row is None or row.used or row.expires < timezone.now() or row.space_id != space.pk:
            raise OAuthError("invalid_grant", "The code is unknown, used or expired: sign in again.")
        row.used = True
        row.save(update_fields=["used"])
    if row.redirect_uri != redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri is not the one the code was made for.")
    if row.code_challenge:
        expected = _b64(hashlib.sha256(verifier.encode()).digest())
        if not hmac.compare_digest(expected, row.code_challenge):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge.")
    if not row.user.is_active:
        raise OAuthError("invalid_grant", "The user is disabled.")
    minutes = space.deployed_build.space_config().hf_oauth_expiration_minutes if space.deployed_build else 480
    expires = timezone.now() + timedelta(minutes=minutes)
    _, raw = AccessToken.issue(row.user, f"sign-in to {space.full_name}"[:100], OAUTH_SCOPE, expires=expires)
    scope = _granted(row.scope)
    now = int(timezone.now().timestamp())
    id_claims = {
        **claims(row.user, scope), "iss": issuer, "aud": client_id(space), "iat": now,
        "exp": now + minutes * 60, "auth_time": now,
    }  # fmt: skip
    if row.nonce:
        id_claims["nonce"] = row.nonce
    answer = {"access_token": raw, "token_type": "Bearer", "expires_in": minutes * 60, "scope": scope}
    if "openid" in scope.split():
        answer["id_token"] = sign(id_claims)
    return answer
