"""docs/settings.md is generated from the settings classes: it must be exactly what the
generator prints now, and every variable must say what it means."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

from pydantic import Field

from tickwire.core.settings import ServiceSettings

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "uv run --frozen python docs/gen_settings.py > docs/settings.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_settings", DOCS / "gen_settings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_md_is_what_the_classes_generate():
    assert (DOCS / "settings.md").read_text() == _generator().render(), \
        f"docs/settings.md drifted from the settings classes: run `{REGENERATE}`"


def test_every_setting_has_a_meaning():
    assert _generator().missing_meanings() == [], \
        "give these settings a Field(description=…) (or a line in docs/gen_settings.py)"


def test_every_variable_a_service_reads_is_listed():
    text = (DOCS / "settings.md").read_text()
    for module in ("tickwire.edge.settings", "tickwire.registry.settings",
                   "tickwire.ingestor.settings"):
        importlib.import_module(module)
    from tickwire.core.settings import env_name
    for cls in [ServiceSettings, *ServiceSettings.__subclasses__()]:
        for name in cls.model_fields:
            assert f"`{env_name(cls, name)}`" in text, env_name(cls, name)


def test_a_new_field_and_its_description_are_picked_up():
    generator = _generator()

    class ProbeSettings(ServiceSettings):
        model_config = {"env_prefix": "TICKWIRE_PROBE_"}
        widget_count: int = Field(7, ge=1, description="widgets per gadget")

    ProbeSettings.__module__ = "tickwire.probe.settings"
    try:
        page = generator.render()
        assert "| `TICKWIRE_PROBE_WIDGET_COUNT` | `7` | int (≥ 1) | widgets per gadget |" in page
    finally:
        del ProbeSettings
        gc.collect()
