"""User B can reach nothing of user A's over HTTP, and A's ids behave exactly like ids that do not exist.

Alice's data carries canary strings. Bob then runs every probe in the tables below, over real HTTP
with his own token, and every response he gets is checked for the canaries. A probe that names one of
Alice's ids is also run with a fresh id that exists nowhere; the two responses must be identical once
the ids are blanked out, so Bob cannot even tell that Alice's id exists.

Adding a feature adds rows: seed its data in `seed_alice` (with a canary) and add its probes, e.g.
`Probe("tool", "update_memory", {"memory_id": "{memory_id}", "content": "x"}, destructive=True)`.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from context_server.app import App

from .http_support import RunningServer

pytestmark = pytest.mark.anyio

CANARY = "CANARYzq7"  # in every prompt, body and description Alice writes; Bob must never see it
CANARY_PROMPT = f"a {CANARY} lighthouse at dusk"
CANARY_TEMPLATE = "canaryzq7-poster"
CANARY_REQUEST = f"req-{CANARY}"


@dataclass(frozen=True)
class Probe:
    kind: Literal["tool", "resource", "prompt", "complete", "list"]
    target: str  # tool name, resource URI, prompt name, completion ref, or list method; may hold {placeholders}
    args: dict[str, Any] = field(default_factory=dict)
    destructive: bool = False  # not replayed as Alice (it would destroy the data the other probes look for)
    #: Replayed as Alice to prove the probe finds her data. False for `reference` until reference
    #: resolution lands in enrichment: today an image id in `reference` is resolved for nobody.
    alice_sees: bool = True


#: Probes naming one of Alice's ids: Bob's answer must equal his answer for an id that exists nowhere.
FOREIGN_ID_PROBES = [
    Probe("tool", "get_generation", {"job_id": "{job_id}"}),
    Probe("tool", "get_generation", {"job_id": "{running_job_id}"}),
    Probe("tool", "generate_image", {"prompt": "a cat", "reference": "{image_id}", "dry_run": True}),
    Probe("tool", "generate_image", {"prompt": "a cat", "reference": "{image_id}", "seed": 7}),
    Probe("tool", "edit_image", {"image": "{image_id}", "instruction": "make it blue"}),
    Probe("tool", "update_memory", {"memory_id": "{memory_id}", "content": "x"}, destructive=True),
    Probe("tool", "delete_memory", {"memory_id": "{memory_id}"}, destructive=True),
    Probe("tool", "get_template", {"name": "{template}"}),
    Probe("tool", "get_template", {"name": "{template}", "version": 1}),
    Probe("tool", "generate_image", {"prompt": "a cat", "template": "{template}",
                                     "template_args": {"subject": "x"}, "dry_run": True}),
    Probe("resource", "image://{image_id}/view"),
    Probe("resource", "image://{image_id}/view?format=webp&width=64"),
    Probe("resource", "image://{image_id}/metadata"),
    Probe("resource", "template://{template}"),
    Probe("prompt", "{template}", {"subject": "x"}),
    Probe("tool", "delete_image", {"image_id": "{image_id}"}, destructive=True),
    Probe("tool", "delete_template", {"name": "{template}"}, destructive=True),
]

#: Probes that list or search: Bob's answer must hold no canary and none of Alice's ids.
LISTING_PROBES = [
    Probe("tool", "list_recent_generations", {"limit": 100}),
    Probe("tool", "list_templates"),
    Probe("tool", "generate_image", {"prompt": "a cat", "reference": "the previous one", "dry_run": True}),
    Probe("tool", "generate_image", {"prompt": "a cat", "reference": f"my last {CANARY} lighthouse image",
                                     "dry_run": True}),
    Probe("resource", "image://list"),
    Probe("resource", "template://list"),
    Probe("tool", "get_all_memories", {"limit": 200}),
    Probe("tool", "search_memories", {"query": "lighthouse style stormy indigo", "limit": 50}),
    Probe("tool", "search_images", {"query": "lighthouse", "limit": 50}),
    Probe("tool", "get_profile"),
    Probe("tool", "generate_image", {"prompt": "a lighthouse at dusk in a storm", "dry_run": True}),
    Probe("resource", "memory://all"),
    Probe("resource", "profile://me"),
    Probe("list", "prompts"),
    Probe("list", "resources"),
    Probe("list", "resource_templates"),
    Probe("complete", "template://{{name}}", {"name": "canary"}),
    Probe("complete", "prompt:{template}", {"subject": ""}),
]


async def run_probe(client: Client, probe: Probe, ids: dict[str, str]) -> str:
    """The probe's whole response (result or error) as text."""
    target = probe.target.format(**ids)
    args = {k: (v.format(**ids) if isinstance(v, str) else v) for k, v in probe.args.items()}
    try:
        if probe.kind == "tool":
            result: Any = await client.call_tool(target, args)
        elif probe.kind == "resource":
            result = await client.read_resource(target, cache_mode="bypass")
        elif probe.kind == "prompt":
            result = await client.get_prompt(target, args)
        elif probe.kind == "list":
            result = await getattr(client, f"list_{target}")()
        else:
            ref: Any = (PromptReference(name=target.removeprefix("prompt:")) if target.startswith("prompt:")
                        else ResourceTemplateReference(uri=target))
            name, value = next(iter(args.items()))
            result = await client.complete(ref, {"name": name, "value": value})
    except Exception as exc:
        return f"{type(exc).__name__} {getattr(exc, 'code', '')}: {exc}"
    return json.dumps(result.model_dump(mode="json", exclude={"meta"}), sort_keys=True)


VOLATILE = [  # what differs between any two calls: new ids, clocks, random seeds
    (re.compile(r"\b[0-9a-f]{32}\b"), "<new id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z"), "<time>"),
    (re.compile(r'"(enrich|provider|total)": [\d.]+'), r'"\1": <ms>'),
    (re.compile(r'"seed": \d+'), '"seed": <seed>'),
]


def blank(text: str, ids: dict[str, str]) -> str:
    """The response with the probed ids named by role, and everything volatile blanked."""
    for key, value in ids.items():
        text = text.replace(value, f"<{key}>")
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return text


async def seed_alice(client: Client) -> dict[str, str]:
    """Alice's data, every piece carrying the canary; returns the ids Bob will try."""
    made = await client.call_tool("generate_image", {"prompt": CANARY_PROMPT, "request_id": CANARY_REQUEST})
    assert not made.is_error and made.structured_content
    running = await client.call_tool("generate_image", {"prompt": f"{CANARY} second", "wait": False})
    assert running.structured_content
    saved = await client.call_tool("save_template", {
        "name": CANARY_TEMPLATE, "description": f"{CANARY} description",
        "body": f"{CANARY} poster of {{subject}}",
        "arguments": [{"name": "subject", "description": f"{CANARY} subject", "required": True}]})
    assert not saved.is_error, saved.content
    memory = await client.call_tool("save_memory", {"content": f"{CANARY} lighthouse style: stormy indigo",
                                                    "kind": "style", "pinned": True})
    assert not memory.is_error and memory.structured_content, memory.content
    profile = await client.call_tool("update_profile", {"default_negative_prompt": f"{CANARY} blur"})
    assert not profile.is_error, profile.content
    return {"image_id": made.structured_content["image_id"], "job_id": made.structured_content["job_id"],
            "running_job_id": running.structured_content["job_id"], "template": CANARY_TEMPLATE,
            "memory_id": memory.structured_content["memory_id"]}


def missing_like(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same shape that exist nowhere, so error texts can be compared character for character."""
    return {key: ("canaryzq7-" + secrets.token_hex(3)) if key == "template" else secrets.token_hex(len(value) // 2)
            for key, value in ids.items()}


async def test_bob_cannot_reach_anything_of_alices(two_users: tuple[RunningServer, str, str], app: App) -> None:
    server, alice_token, bob_token = two_users
    async with server.client(alice_token) as alice:
        ids = await seed_alice(alice)
        # The probes are meaningful: as Alice, each one finds her data where a missing id finds nothing.
        for probe in FOREIGN_ID_PROBES:
            if probe.alice_sees and not probe.destructive:
                missing = missing_like(ids)
                found = blank(await run_probe(alice, probe, ids), ids)
                assert found != blank(await run_probe(alice, probe, missing), missing), probe
        alice_view = await run_probe(alice, Probe("resource", "image://{image_id}/view"), ids)

    async with server.client(bob_token) as bob:
        for probe in LISTING_PROBES:
            seen = await run_probe(bob, probe, ids)
            assert CANARY not in seen, (probe, seen)
            for value in ids.values():
                assert value not in seen, (probe, seen)
        for probe in FOREIGN_ID_PROBES:
            missing = missing_like(ids)
            foreign = await run_probe(bob, probe, ids)
            assert CANARY not in foreign, (probe, foreign)
            assert blank(foreign, ids) == blank(await run_probe(bob, probe, missing), missing), probe

        # Updating is per user too: Bob saving a template under Alice's name makes his own.
        saved = await bob.call_tool("save_template", {"name": CANARY_TEMPLATE, "body": "bob's {subject}",
                                                      "arguments": [{"name": "subject"}]})
        assert not saved.is_error and saved.structured_content and saved.structured_content["version"] == 1
        # An idempotency key is per user: Alice's request_id gives Bob a new image of his own.
        again = await bob.call_tool("generate_image", {"prompt": "a dog", "request_id": CANARY_REQUEST})
        assert again.structured_content and again.structured_content["image_id"] != ids["image_id"]
        assert CANARY not in json.dumps(again.model_dump(mode="json"))

    async with server.client(alice_token) as alice:  # nothing of Alice's was touched
        assert await run_probe(alice, Probe("resource", "image://{image_id}/view"), ids) == alice_view
        template = await alice.call_tool("get_template", {"name": CANARY_TEMPLATE})
        assert template.structured_content and CANARY in template.structured_content["body"]
        assert template.structured_content["version"] == 1
        job = await alice.call_tool("get_generation", {"job_id": ids["job_id"]})
        assert job.structured_content and job.structured_content["image_id"] == ids["image_id"]
    assert {r["user_id"] for r in app.audit.recent()} == {"alice", "bob"}
