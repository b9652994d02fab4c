"""The OpenID provider's routes (see accounts/oauth.py): discovery, authorize (a consent page),
token, userinfo and the signing keys."""

import base64
import hmac
from urllib.parse import unquote, urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from spacedock.accounts import oauth
from spacedock.accounts.auth import BadCredentials, token_from_request

FIELDS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
          "code_challenge_method")  # fmt: skip


def _issuer(request) -> str:
    # As the caller reached the platform: the browser and the space's server may use different
    # addresses of it (SPACEDOCK_OAUTH_PROVIDER_URL), and each checks the issuer it was given.
    return request.build_absolute_uri("/").rstrip("/")


def _error(exc: oauth.OAuthError) -> JsonResponse:
    response = JsonResponse({"error": exc.error, "error_description": exc.message}, status=exc.status)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def discovery(request):
    return JsonResponse(oauth.discovery(_issuer(request)))


@require_GET
def jwks(request):
    return JsonResponse(oauth.jwks())


def _consent_page(request, space, params: dict, status: int = 200, error: str = ""):
    response = render(
        request, "accounts/oauth_consent.html",
        {"space": space, "params": params, "error": error, "scopes": oauth._granted(params.get("scope", ""))},
        status=status,
    )  # fmt: skip
    if space is not None:
        # The page's form ends in a redirect to the space: CSP's form-action must allow its origin.
        # (Chromium checks form-action on the redirect too.) Any port: gradio names none.
        response["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; "
            f"form-action 'self' http://{space.host}:* https://{space.host}:* http://{space.host} "
            f"https://{space.host}"
        )
    return response


@require_http_methods(["GET", "POST"])
def authorize(request):
    """GET shows who signs in where; the signed-in user's POST (with the CSRF token) allows it."""
    source = request.POST if request.method == "POST" else request.GET
    params = {key: source.get(key, "") for key in FIELDS}
    try:
        space = oauth.space_for_client(params["client_id"])
    except oauth.OAuthError as exc:
        return _consent_page(request, None, params, 400, exc.message)
    try:
        oauth.check_enabled(space)
        oauth.check_redirect(space, params["redirect_uri"])
        if params["response_type"] != "code":
            raise oauth.OAuthError("unsupported_response_type", "Only response_type=code is served.")
        if params["code_challenge"] and params["code_challenge_method"] != "S256":
            raise oauth.OAuthError("invalid_request", "code_challenge_method must be S256.")
    except oauth.OAuthError as exc:
        return _consent_page(request, space, params, 400, exc.message)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not space.can_read(request.user):
        return _consent_page(request, None, params, 404, "No such space.")
    if request.method == "GET":
        return _consent_page(request, space, params)
    if request.POST.get("decision") != "allow":
        target = oauth.check_redirect(space, params["redirect_uri"])
        query = {"error": "access_denied", **({"state": params["state"]} if params["state"] else {})}
        return HttpResponseRedirect(f"{target}{'&' if '?' in target else '?'}{urlencode(query)}")
    return HttpResponseRedirect(
        oauth.grant(
            request.user, space, params["redirect_uri"], params["scope"], params["state"], params["nonce"],
            params["code_challenge"],
        )
    )  # fmt: skip


def _client(request) -> tuple[str, str]:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    kind, _, value = header.partition(" ")
    if kind.lower() == "basic":
        try:
            cid, _, secret = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            raise oauth.OAuthError(
                "invalid_client", "The Authorization header is not valid Basic.", 401
            ) from None
        return unquote(cid), unquote(secret)
    return request.POST.get("client_id", ""), request.POST.get("client_secret", "")


@csrf_exempt
@require_POST
def token(request):
    """The space's server trades a code for a token (client_secret_basic or client_secret_post)."""
    try:
        cid, secret = _client(request)
        space = oauth.space_for_client(cid)
        if not hmac.compare_digest(secret.encode(), oauth.client_secret(space).encode()):
            raise oauth.OAuthError("invalid_client", "The client secret is wrong.", 401)
        if request.POST.get("grant_type") != "authorization_code":
            raise oauth.OAuthError("unsupported_grant_type", "Only grant_type=authorization_code is served.")
        oauth.check_enabled(space)
        answer = oauth.exchange(
            space, request.POST.get("code", ""), request.POST.get("redirect_uri", ""),
            request.POST.get("code_verifier", ""), _issuer(request),
        )  # fmt: skip
    except oauth.OAuthError as exc:
        return _error(exc)
    response = JsonResponse(answer)
    response["Cache-Control"] = "no-store"
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def userinfo(request):
    try:
        found = token_from_request(request)
    except BadCredentials:
        found = None
    if found is None:
        response = _error(oauth.OAuthError("invalid_token", "Send the access token as a Bearer token.", 401))
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    return JsonResponse(oauth.claims(found.user, "openid profile email"))
