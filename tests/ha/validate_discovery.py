#!/usr/bin/env python3
"""Validate MQTT discovery payloads with Home Assistant's own schemas.

Reads JSON lines on stdin, one discovery message per line:

    {"topic": "homeassistant/sensor/node/object/config", "payload": {...}}

(`payload` may also be the published JSON text as a string; an empty string or null is a
removal message, for which only the topic is checked.)

Each message goes through the same steps as Home Assistant's MQTT discovery
(homeassistant/components/mqtt/discovery.py, ``async_discovery_message_received``):
the topic must match ``TOPIC_MATCHER`` under the discovery prefix and name a supported
component, the payload must be a JSON object, abbreviations are expanded, the ``origin``
block must pass ``MQTT_ORIGIN_INFO_SCHEMA``, ``platform: mqtt`` is added, and the payload must
pass the platform's ``DISCOVERY_SCHEMA`` (homeassistant/components/mqtt/<component>.py) — the
exact call ``mixins.async_setup_entity_entry_helper`` makes before creating the entity.

On top of that (strict mode, default) a top-level key that the schema silently drops
(``extra=vol.REMOVE_EXTRA``) is a failure too, unless it is listed in NEWER_KEYS: a key the
running Home Assistant does not know, sent on purpose for newer releases.

With --runtime the configs that pass are then delivered to a live, in-process Home Assistant
MQTT integration (see ha_runtime.py), followed by the runtime lines of the input:

    {"discover": {}}                  publish the valid configs here (default: before all steps)
    {"message": {"topic": str, "payload": str, "retain": bool}}     publish a message
    {"expect": {"unique_id": str, "state": str, "state_not": [str], "attributes": {},
                "absent": bool}}                                    check an entity
    {"command": {"unique_id": str, "service": "switch.turn_on", "data": {},
                 "topic": str, "payload": str}}                     check what HA publishes
    {"expect_device": {"identifier": str, "fields": {}, "entities": int, "absent": bool}}

and anything Home Assistant logs at WARNING or above is a failure.

Prints every failure precisely and exits 1 if any message fails, 0 otherwise.
Usage: validate_discovery.py [--prefix homeassistant] [--lenient] [--runtime] [--quiet]
       < lines.jsonl
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

# Keys that the Home Assistant under test drops but newer releases understand; sending them is
# deliberate. (component, key) -> first HA release that validates the key.
NEWER_KEYS: dict[tuple[str, str], str] = {
    # core PR #123248: sensor `options` (only together with device_class enum).
    ("sensor", "options"): "2024.9",
}
# The same for every component. `default_entity_id` (core PR #151775) replaces `object_id`, which
# is ignored from 2026.4; both are sent, so every release gets entity ids from the room id.
NEWER_KEYS_ANY_COMPONENT: dict[str, str] = {
    "default_entity_id": "2025.10",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="homeassistant", help="discovery prefix")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="do not fail on keys Home Assistant silently drops",
    )
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    parser.add_argument(
        "--runtime",
        action="store_true",
        help="also run the configs and runtime steps through a live Home Assistant",
    )
    args = parser.parse_args()

    try:
        import voluptuous as vol
        from homeassistant.const import __version__ as ha_version
        from homeassistant.components.mqtt import discovery
        from homeassistant.components.mqtt.abbreviations import (
            ABBREVIATIONS,
            DEVICE_ABBREVIATIONS,
            ORIGIN_ABBREVIATIONS,
        )
        from homeassistant.util.json import json_loads_object
    except ImportError as err:  # pragma: no cover - environment problem
        print(
            f"validate_discovery: cannot import Home Assistant ({err}); "
            "run scripts/ha-venv.sh and use its python",
            file=sys.stderr,
        )
        return 2

    failures: list[str] = []
    checked = 0
    removals = 0
    valid_configs: list[tuple[str, str]] = []
    steps: list[dict[str, Any]] = []
    step_keys = {"message", "expect", "command", "expect_device", "discover"}

    def fail(where: str, message: str) -> None:
        failures.append(f"{where}: {message}")

    for lineno, line in enumerate(sys.stdin, start=1):
        line = line.strip()
        if not line:
            continue
        where = f"line {lineno}"
        try:
            item = json.loads(line)
        except ValueError as err:
            fail(where, f"input is not JSON: {err}")
            continue
        if isinstance(item, dict) and step_keys & set(item):
            steps.append(item)
            continue
        if not isinstance(item, dict) or not isinstance(item.get("topic"), str):
            fail(where, 'input line must be {"topic": str, "payload": object|str}')
            continue
        topic: str = item["topic"]
        where = f"{where} [{topic}]"
        raw = item.get("payload")

        # Topic, as discovery.py checks it.
        if not topic.startswith(f"{args.prefix}/"):
            fail(where, f"topic is not under the discovery prefix '{args.prefix}/'")
            continue
        trimmed = topic.replace(f"{args.prefix}/", "", 1)
        match = discovery.TOPIC_MATCHER.match(trimmed)
        if not match:
            fail(
                where,
                "illegal discovery topic (HA: 'Received message on illegal discovery "
                "topic'): needs <component>/[<node_id>/]<object_id>/config with ids "
                "of [a-zA-Z0-9_-]",
            )
            continue
        component = match.group("component")
        if component not in discovery.SUPPORTED_COMPONENTS:
            fail(where, f"component '{component}' is not supported by MQTT discovery")
            continue

        if raw is None or raw == "":
            removals += 1
            continue
        text = raw if isinstance(raw, str) else json.dumps(raw)
        if isinstance(raw, str):
            try:
                payload = dict(json_loads_object(raw))
            except ValueError as err:
                fail(where, f"payload is not a JSON object: {err}")
                continue
        elif isinstance(raw, dict):
            # Round-trip through JSON text like a real message.
            payload = dict(json_loads_object(json.dumps(raw)))
        else:
            fail(where, "payload must be a JSON object")
            continue
        checked += 1

        # Abbreviation expansion, as discovery.py does it.
        for key in list(payload):
            payload[ABBREVIATIONS.get(key, key)] = payload.pop(key)
        if isinstance(payload.get("device"), dict):
            device = payload["device"]
            for key in list(device):
                device[DEVICE_ABBREVIATIONS.get(key, key)] = device.pop(key)
        if "origin" in payload:
            origin = payload["origin"]
            try:
                for key in list(origin):
                    origin[ORIGIN_ABBREVIATIONS.get(key, key)] = origin.pop(key)
                discovery.MQTT_ORIGIN_INFO_SCHEMA(origin)
            except Exception as err:  # noqa: BLE001 - HA catches everything here too
                fail(
                    where,
                    f"origin rejected (HA: 'Unable to parse origin information'): {err}",
                )
                continue
        if isinstance(payload.get("availability"), list):
            for conf in payload["availability"]:
                if isinstance(conf, dict):
                    for key in list(conf):
                        conf[ABBREVIATIONS.get(key, key)] = conf.pop(key)
        if "~" in payload:
            fail(where, "'~' topic base is not supported by this validator")
            continue

        sent_keys = set(payload)
        payload["platform"] = "mqtt"
        try:
            module = importlib.import_module(f"homeassistant.components.mqtt.{component}")
            schema = module.DISCOVERY_SCHEMA
        except (ImportError, AttributeError) as err:
            fail(where, f"no DISCOVERY_SCHEMA for '{component}': {err}")
            continue
        try:
            config = schema(payload)
        except vol.Invalid as err:
            errors = err.errors if isinstance(err, vol.MultipleInvalid) else [err]
            for error in errors:
                path = ".".join(str(p) for p in error.path) or "<payload>"
                fail(where, f"schema error at '{path}': {error.msg}")
            continue
        except Exception as err:  # noqa: BLE001 - report, don't crash
            fail(where, f"schema raised {type(err).__name__}: {err}")
            continue

        valid_configs.append((topic, text))
        dropped = sorted(sent_keys - set(config))
        for key in dropped:
            newer = NEWER_KEYS.get((component, key)) or NEWER_KEYS_ANY_COMPONENT.get(key)
            if newer:
                if not args.quiet:
                    print(
                        f"note: {where}: '{key}' is ignored by HA {ha_version} "
                        f"(understood from {newer})"
                    )
            elif not args.lenient:
                fail(
                    where,
                    f"key '{key}' is unknown to HA {ha_version} {component} discovery "
                    "and would be silently dropped",
                )

    schema_failures = len(failures)
    if args.runtime:
        if schema_failures:
            fail("runtime", "skipped: fix the schema failures first")
        else:
            import os

            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import ha_runtime

            ha_runtime.run(args.prefix, valid_configs, steps, fail)
            if not args.quiet:
                print(
                    f"validate_discovery: runtime: {len(valid_configs)} config(s) delivered, "
                    f"{len(steps)} step(s), {len(failures) - schema_failures} failure(s)"
                )
    elif steps:
        fail("input", f"{len(steps)} runtime step(s) given without --runtime")

    total = checked + removals
    if not args.quiet or failures:
        print(
            f"validate_discovery: Home Assistant {ha_version}: {checked} config(s), "
            f"{removals} removal(s), {len(failures)} failure(s)"
        )
    for failure in failures:
        print(f"FAIL {failure}")
    if total == 0 and not failures:
        print("validate_discovery: no input", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
