"""The "Use via API" tab's endpoints, read from the running app's own /gradio_api/info (Gradio 5 and
later; /info before), and the Python, JavaScript and cURL snippets the Hub shows for each.

The app is asked where Caddy reaches it (the runner's Runtime.address and Space.port: on the local
engine the container's address on the spaces' bridge, on Swarm its node's), as the runner's health
check does, so that a private space needs no credentials here; a deployment whose web process
cannot reach that address gets the generic snippet."""

import json
from shlex import quote as shell_quote

import requests
from django.core.cache import cache

from spacedock.spaces.models import LIVE_STAGES, Space

MAX_INFO_BYTES = 1024 * 1024
PATHS = ("/gradio_api/info", "/info")


def app_endpoints(space: Space) -> list[dict] | None:
    """The app's named endpoints: [{"api_name", "parameters": [{"name", "type", "example", ...}],
    "returns": [...]}]; None when the app does not run or does not answer."""
    if space.stage not in LIVE_STAGES or not space.port:
        return None
    key = f"gradio-api:{space.pk}:{space.container_id}"
    if (cached := cache.get(key)) is not None:
        return cached or None
    info = _fetch(f"{space.app_address}:{space.port}")
    endpoints = _endpoints(info) if info else []
    cache.set(key, endpoints, 600 if endpoints else 15)
    return endpoints or None


def _fetch(dial: str) -> dict | None:
    for path in PATHS:
        try:
            with requests.get(f"http://{dial}{path}", timeout=3, stream=True) as answer:
                if answer.status_code != 200:
                    continue
                body = answer.raw.read(MAX_INFO_BYTES + 1, decode_content=True)
            if len(body) > MAX_INFO_BYTES:
                return None
            return json.loads(body)
        except (requests.RequestException, ValueError):
            continue
    return None


def _endpoints(info: dict) -> list[dict]:
    named = info.get("named_endpoints") if isinstance(info, dict) else None
    if not isinstance(named, dict):
        return []
    endpoints = []
    for api_name, spec in named.items():
        if not isinstance(spec, dict) or not str(api_name).startswith("/"):
            continue
        params = []
        for i, p in enumerate(spec.get("parameters") or []):
            if not isinstance(p, dict):
                continue
            python_type = p.get("python_type") if isinstance(p.get("python_type"), dict) else {}
            params.append(
                {
                    "name": str(p.get("parameter_name") or p.get("label") or f"param_{i}"),
                    "label": str(p.get("label") or ""),
                    "type": str(python_type.get("type") or "Any"),
                    "component": str(p.get("component") or ""),
                    "example": p.get("example_input"),
                    "default": p.get("parameter_default") if p.get("parameter_has_default") else None,
                    "has_default": bool(p.get("parameter_has_default")),
                }
            )
        returns = [
            {"label": str(r.get("label") or ""), "component": str(r.get("component") or "")}
            for r in spec.get("returns") or []
            if isinstance(r, dict)
        ]
        endpoint = {"api_name": str(api_name), "parameters": params, "returns": returns}
        endpoint["snippets"] = snippets_for(endpoint)
        endpoints.append(endpoint)
    return endpoints


def _is_file(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("url") or value.get("path"), str)


def _py(value) -> str:
    if _is_file(value):
        return f"handle_file({(value.get('url') or value.get('path'))!r})"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def snippets_for(endpoint: dict, full_name: str = "{space}") -> dict[str, str]:
    """Python, JavaScript and cURL for one endpoint; `{space}` and `{url}` are filled in per page."""
    params = [p for p in endpoint["parameters"] if not p["component"].lower().startswith("state")]
    py_args = "".join(f"\n    {p['name']}={_py(p['example'])}," for p in params)
    js_args = ", ".join(f"{json.dumps(p['name'])}: {json.dumps(p['example'])}" for p in params)
    data = json.dumps({"data": [p["example"] for p in params]})
    name = endpoint["api_name"]
    files = any(_is_file(p["example"]) for p in params)
    return {
        "python": (
            f"from gradio_client import Client{', handle_file' if files else ''}\n\n"
            f'client = Client("{full_name}")\n'
            f"result = client.predict({py_args}\n    api_name={json.dumps(name)},\n)\nprint(result)"
        ),
        "javascript": (
            'import { Client } from "@gradio/client";\n\n'
            'const client = await Client.connect("{url}/");\n'
            f"const result = await client.predict({json.dumps(name)}, {{ {js_args} }});\n"
            "console.log(result.data);"
        ),
        # Gradio 5 and later; the call answers an event id, the second request streams the result.
        "curl": (
            f"EVENT_ID=$(curl -s -X POST {{url}}/gradio_api/call{name} \\\n"
            f'  -H "Content-Type: application/json" -d {shell_quote(data)} \\\n'
            "  | awk -F'\"' '{ print $4 }')\n"
            f"curl -N {{url}}/gradio_api/call{name}/$EVENT_ID"
        ),
    }


def fill(endpoints: list[dict], space: Space) -> list[dict]:
    """The snippets with this space's name and address."""
    for endpoint in endpoints:
        endpoint["snippets"] = {
            lang: text.replace("{space}", space.full_name).replace("{url}", space.url.rstrip("/"))
            for lang, text in endpoint["snippets"].items()
        }
    return endpoints
