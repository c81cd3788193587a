"""List the pip requirements of what a headless Home Assistant core loads in the tests.

Run by scripts/ha-current.sh with the Home Assistant venv's python; prints one requirement a
line. `hass --skip-pip` installs nothing itself, so everything it sets up must be there: the
integrations bootstrap always loads (core, default and base platform ones), what the tests'
configuration.yaml names (http, api, config, onboarding, logger), the MQTT integration and the
ones its modules import (hassio, camera, infrared), and those that onboarding's core-config step
adds (google_translate, met, radio_browser, shopping_list). Each with the integrations its
manifest depends on, transitively.
"""

import json
import os
import sys

import homeassistant
from homeassistant import bootstrap
from homeassistant.const import BASE_PLATFORMS

COMPONENTS = os.path.join(os.path.dirname(homeassistant.__file__), "components")
EXTRA = {
    "api", "camera", "config", "frontend", "google_translate", "hassio", "http", "infrared",
    "logger", "met", "mqtt", "network", "onboarding", "radio_browser", "shopping_list",
    "system_log",
}


def main() -> None:
    todo = set(BASE_PLATFORMS) | set(bootstrap.DEFAULT_INTEGRATIONS) | set(EXTRA)
    todo |= set(getattr(bootstrap, "CORE_INTEGRATIONS", ()))
    todo |= set(sys.argv[1:])
    done: set[str] = set()
    requirements: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in done:
            continue
        done.add(domain)
        manifest = os.path.join(COMPONENTS, domain, "manifest.json")
        if not os.path.isfile(manifest):
            continue
        with open(manifest, encoding="utf-8") as fh:
            data = json.load(fh)
        requirements.update(data.get("requirements", ()))
        todo.update(data.get("dependencies", ()))
        todo.update(data.get("after_dependencies", ()))
    print("\n".join(sorted(requirements)))


if __name__ == "__main__":
    main()
