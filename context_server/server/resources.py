"""Resources: image bytes and provenance, the user's image list, and provider information."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp.types import INVALID_PARAMS

from context_server.errors import InvalidInput, NotFound
from context_server.models import image_uri
from context_server.server.auth import current_user
from context_server.server.generation import describe_provider

if TYPE_CHECKING:
    from context_server.app import App

__all__ = ["VIEW_TEMPLATE", "read_image_view", "register_resources"]

VIEW_TEMPLATE = "image://{image_id}/view{?format,width,height,quality}"
_VIEW = UriTemplate.parse(VIEW_TEMPLATE)


def _int_param(name: str, value: object) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError:
        raise MCPError(code=INVALID_PARAMS, message=f"{name} must be a whole number, got {value!r}") from None


def read_image_view(app: App, uri: str) -> Iterable[ReadResourceContents] | None:
    """Serve `image://{id}/view?...` with the MIME type of the format asked for (None: not a view URI)."""
    params = _VIEW.match(uri)
    if params is None:
        return None
    image_id = str(params.get("image_id", ""))
    user = current_user(app)
    try:
        data, mime = app.images.view(
            user,
            image_id,
            format=str(params["format"]) if params.get("format") else None,
            width=_int_param("width", params.get("width")),
            height=_int_param("height", params.get("height")),
            quality=_int_param("quality", params.get("quality")),
        )
    except NotFound:
        raise ResourceNotFoundError(f"Resource not found: {uri}") from None
    except InvalidInput as exc:
        raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None
    return [ReadResourceContents(content=data, mime_type=mime)]


def register_resources(server: MCPServer, app: App) -> None:
    @server.resource(VIEW_TEMPLATE, name="image", title="Image", mime_type="image/png",
                     description="The image bytes. format=png|webp|jpeg; width or height alone resize "
                                 "proportionally; both centre-crop to exactly that size; quality 1..100.")
    def image_view(image_id: str, format: str | None = None, width: str | None = None,
                   height: str | None = None, quality: str | None = None) -> bytes:
        raise ResourceError("served by ContextServer.read_resource")  # pragma: no cover - routed before this

    @server.resource("image://{image_id}/metadata", name="image-metadata", title="Image metadata",
                     mime_type="application/json",
                     description="Provenance of an image: prompt, final_prompt, applied receipt, provider, "
                                 "model, seed, size, parent_id, created_at.")
    def image_metadata(image_id: str) -> str:
        try:
            return json.dumps(app.images.metadata(current_user(app), image_id), indent=2)
        except NotFound:
            raise ResourceNotFoundError(f"Resource not found: image://{image_id}/metadata") from None

    @server.resource("image://list", name="image-list", title="Recent images", mime_type="application/json",
                     description="This user's recent images and pending jobs.")
    def image_list() -> str:
        user = current_user(app)
        rows, _ = app.images.recent(user, limit=50)
        pending = [j for j in app.jobs.recent(user, 50)[0] if j["status"] == "running"]
        return json.dumps({
            "images": [{"image_id": r["id"], "prompt": r["prompt"], "created_at": r["created_at"],
                        "uri": image_uri(r["id"]), "width": r["width"], "height": r["height"]}
                       for r in rows],
            "pending_jobs": [{"job_id": j["id"], "status": j["status"], "progress": j["progress"],
                              "created_at": j["created_at"]} for j in pending],
        }, indent=2)

    @server.resource("info://providers", name="providers", title="Providers", mime_type="application/json",
                     description="Providers, their models, capabilities and cost per image.")
    def providers_info() -> str:
        return json.dumps([describe_provider(i).model_dump(mode="json") for i in app.providers.infos()], indent=2)
