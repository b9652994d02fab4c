"""The Hub's error shape and request bodies, shared by every API view.

Views raise; with_api_errors answers. huggingface_hub reads the status and the X-Error-*
headers to pick its exception, and shows the message to the user.
"""

import json
from collections.abc import Callable
from functools import wraps

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse

from spacedock.accounts.auth import BadCredentials
from spacedock.spaces.access import SignInRequired


class ApiError(Exception):
    """An answer in the Hub's error shape, raised from anywhere in a view."""

    def __init__(self, status: int, message: str, code: str = ""):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def api_error(status: int, message: str, code: str = "") -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    response["X-Error-Message"] = message
    if code:
        response["X-Error-Code"] = code
    return response


def with_api_errors(view: Callable) -> Callable:
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except BadCredentials:
            # This exact message makes huggingface_hub say "bad token", not "repo not found".
            return api_error(401, "Invalid credentials in Authorization header")
        except SignInRequired as exc:
            return api_error(401, str(exc))
        except PermissionDenied as exc:
            return api_error(403, str(exc) or "Forbidden")
        except Http404:
            return api_error(404, "Repository not found", code="RepoNotFound")
        except ApiError as exc:
            return api_error(exc.status, exc.message, exc.code)

    return wrapper


def json_body(request) -> dict:
    """The request's JSON object (an empty body is {}); else a 400 that says what to send."""
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        raise ApiError(400, "The request body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object")
    return data


def required(data: dict, key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"'{key}' is required and must be a string")
    return value
