"""The API's documentation for people: ``/api/``, rendered on the server from the same OpenAPI document the
API serves (``api.http.api.spec``), so it cannot say something else; no script, no asset from elsewhere
(a Swagger UI would mean self-hosting a large script bundle; this page is checked like every other)."""

from flask import Blueprint, render_template

from api.http import api

bp = Blueprint("api_docs", __name__)


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _type(schema: dict, components: dict) -> str:
    """A schema's type in a few words: ``string (date)``, ``one of: free, few, full``, ``list of …``."""
    schema = _resolve(schema, components)
    if "enum" in schema:
        return "one of: " + ", ".join("null" if v is None else str(v) for v in schema["enum"])
    kind = schema.get("type", "object")
    kinds = [k for k in (kind if isinstance(kind, list) else [kind]) if k != "null"]
    text = " or ".join(kinds) or "null"
    if kinds == ["array"]:
        text = "list of " + _type(schema.get("items", {}), components)
    if schema.get("format"):
        text += f" ({schema['format']})"
    if "minimum" in schema or "maximum" in schema:
        text += f", {schema.get('minimum', '…')} to {schema.get('maximum', '…')}"
    if "maxLength" in schema:
        text += f", at most {schema['maxLength']} characters"
    if "pattern" in schema:
        text += f", matching {schema['pattern']}"
    if "example" in schema:
        text += f", e.g. {schema['example']}"
    if isinstance(kind, list) and "null" in kind:
        text += ", or null"
    return text


def fields(schema: dict, components: dict, prefix: str = "") -> list[tuple[str, str, str]]:
    """The fields of a response, nested ones by their path (``items[].sessions[].starts_at``)."""
    schema = _resolve(schema, components)
    rows = []
    for name, prop in schema.get("properties", {}).items():
        path = prefix + name
        target = _resolve(prop, components)
        if target.get("type") in ("array", ["array"]) and "properties" in _resolve(target.get("items", {}), components):
            rows.append((path, "list of objects", prop.get("description", "")))
            rows += fields(target["items"], components, path + "[].")
        elif "properties" in target:
            rows.append((path, "object", prop.get("description", "")))
            rows += fields(target, components, path + ".")
        else:
            rows.append((path, _type(prop, components), prop.get("description", target.get("description", ""))))
    return rows


@bp.get("/api/")
def docs():
    """What the API offers, for the people who build the centre's website."""
    document = api.spec.to_dict()
    components = document.get("components", {}).get("schemas", {})
    operations = []
    for path, methods in document["paths"].items():
        shared = methods.get("parameters", [])  # the path's own, such as training_id
        for method, operation in methods.items():
            if method not in ("get", "head", "post", "put", "patch", "delete"):
                continue
            responses = operation.get("responses", {})
            ok = responses.get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
            operations.append({
                "method": method.upper(), "path": path, "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": [(p["name"], p["in"], _type(p.get("schema", {}), components), p.get("description", ""))
                               for p in [*shared, *operation.get("parameters", [])]],
                "responses": sorted((code, r.get("description", "")) for code, r in responses.items()),
                "fields": fields(ok, components),
            })
    return render_template("api/docs.html", info=document["info"], operations=operations,
                           version=document["openapi"])
