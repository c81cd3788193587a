"""Run discovery payloads through a live, in-process Home Assistant MQTT integration.

Used by validate_discovery.py --runtime. A real ``HomeAssistant`` core is booted in a temporary
config directory, the MQTT integration is set up from a config entry with paho's client
replaced by a mock (no broker, no network), and then:

* a tiny broker model keeps retained messages, replays them (RETAIN 1) to each new
  subscription HA makes, and forwards live publishes with RETAIN 0, as MQTT 3.1.1 requires;
* every discovery config is published (retained) on its topic, first or at the
  ``{"discover": {}}`` step;
* ``message`` lines are published in order (the bridge's retained state, events, ...);
* ``expect`` lines are checked against the state machine: the entity with that unique_id must
  exist and have the given ``state`` and/or ``attributes`` (a subset match), or with
  ``absent: true`` must not exist; ``expect_device`` likewise for the device registry;
* ``command`` lines call a service on an entity and check what HA publishes (topic, payload,
  retain flag);
* every WARNING or ERROR that Home Assistant logs meanwhile is a failure (rejected discovery
  payloads, template errors, invalid states, ...).

The same steps HA's own test-suite fixtures use (mocked ``paho.mqtt.client.Client``).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from typing import Any
from unittest.mock import MagicMock, patch

# Log records that say nothing about our payloads.
IGNORED_LOGS = (
    "We found a custom integration",
    "Setup of http is taking",
)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(text in message for text in IGNORED_LOGS):
            return
        self.records.append(record)


async def _run(
    prefix: str,
    configs: list[tuple[str, str]],
    steps: list[dict[str, Any]],
    fail: Any,
) -> None:
    from homeassistant import config_entries, loader
    from homeassistant.bootstrap import async_load_base_functionality
    from homeassistant.core import CoreState, HomeAssistant
    from homeassistant.helpers import device_registry as dr
    from homeassistant.helpers import entity_registry as er
    from paho.mqtt.client import MQTTMessage

    from paho.mqtt.client import topic_matches_sub

    published: list[tuple[str, Any, int, bool]] = []
    retained: dict[str, str] = {}
    mqtt_data: dict[str, Any] = {}

    def deliver(topic: str, payload: str, retain: bool) -> None:
        msg = MQTTMessage(topic=topic.encode())
        msg.payload = payload.encode()
        msg.qos = 0
        msg.retain = retain
        mqtt_data["client"]._mqtt_handle_message(msg)  # pylint: disable=protected-access

    with tempfile.TemporaryDirectory(prefix="ha-config-") as config_dir, patch(
        "paho.mqtt.client.Client"
    ) as client_class:
        with open(f"{config_dir}/configuration.yaml", "w", encoding="utf-8") as f:
            f.write("")
        hass = HomeAssistant(config_dir)
        loader.async_setup(hass)
        hass.config.skip_pip = True
        hass.config_entries = config_entries.ConfigEntries(hass, {})
        await async_load_base_functionality(hass)
        # The MQTT integration's dependencies (web server, file upload) are not needed to
        # process discovery; mark them loaded so nothing listens on a port.
        hass.config.components.update({"http", "file_upload"})
        hass.http = MagicMock()  # camera/image platforms register views on it
        hass.set_state(CoreState.running)

        client = client_class.return_value
        loop = asyncio.get_running_loop()
        mid = 0

        def next_mid() -> int:
            nonlocal mid
            mid += 1
            return mid

        def connect(*_args: Any, **_kwargs: Any) -> int:
            loop.call_soon_threadsafe(client.on_connect, client, None, {}, 0)
            return 0

        def subscribe(topics: Any, qos: int = 0, *_args: Any, **_kwargs: Any):
            m = next_mid()
            loop.call_soon_threadsafe(client.on_subscribe, client, None, m)
            filters = [t[0] for t in topics] if isinstance(topics, list) else [topics]
            # A broker replays retained messages to a new subscription with RETAIN 1.
            for topic, payload in list(retained.items()):
                if any(topic_matches_sub(f, topic) for f in filters):
                    loop.call_soon_threadsafe(deliver, topic, payload, True)
            return (0, m)

        def unsubscribe(*_args: Any, **_kwargs: Any) -> tuple[int, int]:
            m = next_mid()
            loop.call_soon_threadsafe(client.on_unsubscribe, client, None, m)
            return (0, m)

        def publish(topic: str, payload: Any = None, qos: int = 0, retain: bool = False):
            published.append((topic, payload, qos, retain))
            info = MagicMock()
            info.mid = next_mid()
            info.rc = 0
            loop.call_soon_threadsafe(client.on_publish, client, None, info.mid)
            return info

        client.connect.side_effect = connect
        client.subscribe.side_effect = subscribe
        client.unsubscribe.side_effect = unsubscribe
        client.publish.side_effect = publish

        entry = config_entries.ConfigEntry(
            version=1,
            minor_version=1,
            domain="mqtt",
            title="mock-broker",
            data={"broker": "mock-broker", "discovery": True, "discovery_prefix": prefix},
            source="user",
        )
        await hass.config_entries.async_add(entry)
        await hass.async_block_till_done()
        if entry.state is not config_entries.ConfigEntryState.LOADED:
            fail("runtime", f"MQTT config entry did not load: {entry.state}")
            return

        mqtt_client = hass.data["mqtt"].client
        mqtt_data["client"] = mqtt_client

        def broker_publish(topic: str, payload: str, retain: bool) -> None:
            """A publish from the bridge, as a broker handles it."""
            if retain:
                if payload:
                    retained[topic] = payload
                else:
                    retained.pop(topic, None)
            # Forwarded to established subscriptions with RETAIN 0 (MQTT-3.3.1-9).
            deliver(topic, payload, False)

        # Let the discovery subscription settle.
        for _ in range(30):
            await asyncio.sleep(0.1)
            await hass.async_block_till_done()
            if any(s.topic.startswith(f"{prefix}/") for s in mqtt_client.subscriptions):
                break
        else:
            fail("runtime", f"HA never subscribed to the discovery prefix '{prefix}/#'")
            return

        async def settle() -> None:
            """Wait until HA has processed everything, including its debounced subscribes
            (and so the broker's retained replay to them)."""
            await hass.async_block_till_done()
            # pylint: disable=protected-access
            debouncer = mqtt_client._subscribe_debouncer
            for _ in range(200):
                if (
                    not mqtt_client._pending_subscriptions
                    and debouncer._timer is None
                    and debouncer._task is None
                ):
                    break
                await asyncio.sleep(0.02)
                await hass.async_block_till_done()
            await hass.async_block_till_done()

        async def discover() -> None:
            for topic, payload in configs:
                broker_publish(topic, payload, True)
            await settle()

        if not any("discover" in step for step in steps):
            await discover()

        ent_reg = er.async_get(hass)
        dev_reg = dr.async_get(hass)

        def entity_id(unique_id: str) -> str | None:
            for e in ent_reg.entities.values():
                if e.platform == "mqtt" and e.unique_id == unique_id:
                    return e.entity_id
            return None

        for index, step in enumerate(steps, start=1):
            where = f"runtime step {index}"
            if "discover" in step:
                await discover()
            elif "message" in step:
                m = step["message"]
                broker_publish(m["topic"], m.get("payload", ""), bool(m.get("retain", False)))
                await settle()
            elif "expect" in step:
                e = step["expect"]
                uid = e["unique_id"]
                eid = entity_id(uid)
                if e.get("absent"):
                    if eid is not None:
                        fail(where, f"{eid} ({uid}) still exists")
                    continue
                if eid is None:
                    fail(where, f"no entity with unique_id '{uid}' was created")
                    continue
                state = hass.states.get(eid)
                if state is None:
                    fail(where, f"{eid} ({uid}) has no state")
                    continue
                if "state" in e and state.state != e["state"]:
                    fail(where, f"{eid}: state '{state.state}', expected '{e['state']}'")
                if "state_not" in e and state.state in e["state_not"]:
                    fail(where, f"{eid}: state '{state.state}' is one of {e['state_not']}")
                for key, want in e.get("attributes", {}).items():
                    got = state.attributes.get(key)
                    if isinstance(got, tuple):
                        got = list(got)
                    if got != want:
                        fail(where, f"{eid}: attribute {key}={got!r}, expected {want!r}")
            elif "command" in step:
                c = step["command"]
                eid = entity_id(c["unique_id"])
                if eid is None:
                    fail(where, f"no entity with unique_id '{c['unique_id']}'")
                    continue
                domain, service = c["service"].split(".", 1)
                published.clear()
                await hass.services.async_call(
                    domain, service, {"entity_id": eid, **c.get("data", {})}, blocking=True
                )
                await hass.async_block_till_done()
                sent = [p for p in published if p[0] == c["topic"]]
                if not sent:
                    fail(where, f"{c['service']} on {eid} published nothing on {c['topic']}"
                         f" (published: {published})")
                    continue
                topic, payload, _qos, retain = sent[-1]
                if isinstance(payload, bytes):
                    payload = payload.decode()
                if str(payload) != c["payload"]:
                    fail(where, f"{c['service']} on {eid}: payload {payload!r}, "
                         f"expected {c['payload']!r}")
                if retain:
                    fail(where, f"{c['service']} on {eid}: command published retained")
            elif "expect_device" in step:
                d = step["expect_device"]
                device = dev_reg.async_get_device(identifiers={("mqtt", d["identifier"])})
                if d.get("absent"):
                    if device is not None:
                        fail(where, f"device '{d['identifier']}' still exists")
                    continue
                if device is None:
                    fail(where, f"no device with identifier '{d['identifier']}'")
                    continue
                for key, want in d.get("fields", {}).items():
                    got = getattr(device, key)
                    if got != want:
                        fail(where, f"device {key}={got!r}, expected {want!r}")
                count = len(er.async_entries_for_device(ent_reg, device.id))
                if "entities" in d and count != d["entities"]:
                    fail(where, f"device has {count} entities, expected {d['entities']}")
            else:
                fail(where, f"unknown runtime step {step!r}")

        await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await hass.async_stop(force=True)


async def _run_reporting_logs(
    prefix: str,
    configs: list[tuple[str, str]],
    steps: list[dict[str, Any]],
    fail: Any,
) -> None:
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    root.setLevel(logging.WARNING)
    try:
        await _run(prefix, configs, steps, fail)
    finally:
        root.removeHandler(collector)
        for record in collector.records:
            text = f"Home Assistant logged {record.levelname} ({record.name}): {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
            fail("runtime", text)


def run(
    prefix: str,
    configs: list[tuple[str, str]],
    steps: list[dict[str, Any]],
    fail: Any,
) -> None:
    """Boot HA, deliver the configs and run the steps; report problems through ``fail``."""
    asyncio.run(_run_reporting_logs(prefix, configs, steps, fail))
