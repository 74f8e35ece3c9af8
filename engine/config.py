"""Configuration: a TOML file over embedded defaults, then environment overrides.

Each key is declared once in ``callsure.engine.settings`` with its type,
default, check and help text; ``callsure config defaults`` prints them as
a commented TOML file. The order of precedence, lowest first:

1. the defaults declared in ``settings.py``;
2. the TOML file passed with ``--config`` (or ``CALLSURE_CONFIG``);
3. environment variables ``CALLSURE_<SECTION>__<KEY>``, for example
   ``CALLSURE_SERVER__GRPC_ADDRESS=127.0.0.1:6000``.

Validation happens once, at start; an invalid value raises ``ConfigError``
naming the key, the value and what the key expects.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callsure.engine.exceptions import ConfigError

ENV_PREFIX = "CALLSURE_"
SECRET_PLACEHOLDER = "<secret>"


@dataclass(frozen=True)
class Setting:
    """One configuration key.

    ``check`` receives the converted value and returns an error text (what
    the key expects) or ``None`` when the value is valid.
    """

    name: str
    type: type
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None
    secret: bool = False


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    settings: tuple[Setting, ...] = field(default_factory=tuple)

    def setting(self, name: str) -> Setting | None:
        for setting in self.settings:
            if setting.name == name:
                return setting
        return None


class SectionValues(Mapping):
    """Read-only values of one section, by attribute or by key."""

    def __init__(self, name: str, values: dict[str, Any]):
        self._name = name
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(
                f"config section [{self._name}] has no key {key!r}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getstate__(self):
        return {"name": self._name, "values": self._values}

    def __setstate__(self, state):
        self._name = state["name"]
        self._values = state["values"]


class Config(Mapping):
    """Validated configuration: ``config.server.grpc_address``."""

    def __init__(self, sections: dict[str, dict[str, Any]], source: str | None):
        self._sections = {
            name: SectionValues(name, values) for name, values in sections.items()
        }
        self.source = source

    def __getattr__(self, name: str) -> SectionValues:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(f"config has no section [{name}]") from None

    def __getitem__(self, name: str) -> SectionValues:
        return self._sections[name]

    def __iter__(self):
        return iter(self._sections)

    def __len__(self) -> int:
        return len(self._sections)

    def __getstate__(self):
        return {"sections": self.as_dict(), "source": self.source}

    def __setstate__(self, state):
        self.__init__(state["sections"], state["source"])

    def as_dict(self, *, reveal_secrets: bool = True) -> dict[str, dict[str, Any]]:
        """Return plain dicts; secrets replaced unless ``reveal_secrets``."""
        from callsure.engine.settings import SECTIONS

        out: dict[str, dict[str, Any]] = {}
        for name, values in self._sections.items():
            section = SECTIONS[name]
            out[name] = {}
            for key, value in values.items():
                setting = section.setting(key)
                hide = setting is not None and setting.secret and value
                out[name][key] = (
                    SECRET_PLACEHOLDER if hide and not reveal_secrets else value
                )
        return out

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """Return a copy with some keys changed, validated like a file would be.

        ``config.replace(server={"grpc_address": "127.0.0.1:0"})``
        """
        merged = self.as_dict()
        for name, values in sections.items():
            if name not in merged:
                raise ConfigError(name, values, f"one of the sections {sorted(merged)}")
            merged[name].update(values)
        return _validate(merged, self.source)


def _convert(setting: Setting, key: str, raw: Any, from_env: bool) -> Any:
    shown = SECRET_PLACEHOLDER if setting.secret else raw
    expected = setting.type.__name__
    if from_env:
        raw = _parse_env(setting, key, raw)
    if setting.type is bool:
        if not isinstance(raw, bool):
            raise ConfigError(key, shown, "true or false")
        return raw
    if setting.type is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if setting.type is list:
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            raise ConfigError(key, shown, "a list of strings")
        return list(raw)
    if not isinstance(raw, setting.type) or isinstance(raw, bool):
        raise ConfigError(key, shown, f"a value of type {expected}")
    return raw


def _parse_env(setting: Setting, key: str, text: str) -> Any:
    shown = SECRET_PLACEHOLDER if setting.secret else text
    try:
        if setting.type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if setting.type is int:
            return int(text)
        if setting.type is float:
            return float(text)
        if setting.type is list:
            return [item.strip() for item in text.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(
            key,
            shown,
            f"a value of type {setting.type.__name__} (from the environment)",
        ) from None
    return text


def _validate(raw: Mapping[str, Any], source: str | None, env=None) -> Config:
    from callsure.engine.settings import SECTIONS

    values: dict[str, dict[str, Any]] = {
        name: {s.name: s.default for s in section.settings}
        for name, section in SECTIONS.items()
    }
    for section_name, section_raw in raw.items():
        section = SECTIONS.get(section_name)
        if section is None:
            raise ConfigError(
                section_name, "[...]", f"one of the sections {sorted(SECTIONS)}"
            )
        if not isinstance(section_raw, Mapping):
            raise ConfigError(section_name, section_raw, "a table of keys")
        for key, value in section_raw.items():
            setting = section.setting(key)
            dotted = f"{section_name}.{key}"
            if setting is None:
                known = ", ".join(s.name for s in section.settings)
                raise ConfigError(
                    dotted, value, f"one of the keys of [{section_name}]: {known}"
                )
            values[section_name][key] = _convert(setting, dotted, value, False)

    for var, text in (env if env is not None else os.environ).items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section_name, _, key = var[len(ENV_PREFIX) :].lower().partition("__")
        section = SECTIONS.get(section_name)
        setting = section.setting(key) if section else None
        if setting is None:
            raise ConfigError(
                var,
                text if section is None else "...",
                "a known setting; see `callsure config defaults`",
            )
        values[section_name][key] = _convert(
            setting, f"{section_name}.{key}", text, True
        )

    for section_name, section in SECTIONS.items():
        for setting in section.settings:
            value = values[section_name][setting.name]
            problem = setting.check(value) if setting.check else None
            if problem:
                shown = SECRET_PLACEHOLDER if setting.secret else value
                raise ConfigError(f"{section_name}.{setting.name}", shown, problem)
    return Config(values, source)


def load_config(path: str | os.PathLike | None = None, env=None) -> Config:
    """Load and validate the configuration.

    Parameters
    ----------
    path : path-like, optional
        TOML file. Defaults to ``$CALLSURE_CONFIG`` when set; otherwise only
        the embedded defaults and the environment apply.
    env : mapping, optional
        Environment to read overrides from; ``os.environ`` by default.

    Raises
    ------
    ConfigError
        For a missing or malformed file, an unknown key or an invalid value.
    """
    environ = os.environ if env is None else env
    if path is None:
        path = environ.get("CALLSURE_CONFIG") or None
    raw: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("--config", str(file), "an existing TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(file), f"valid TOML ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                "--config",
                str(file),
                f"a valid UTF-8 TOML file (invalid byte at offset {exc.start})",
            ) from None
        except OSError as exc:
            raise ConfigError(
                "--config", str(file), f"a readable TOML file ({exc.strerror})"
            ) from None
    overrides = {k: v for k, v in environ.items() if k != "CALLSURE_CONFIG"}
    return _validate(raw, str(path) if path else None, overrides)


def render_defaults() -> str:
    """Return the defaults as a commented TOML file."""
    from callsure.engine.settings import SECTIONS

    lines = [
        "# callsure configuration. Every key is optional; the values below are",
        "# the defaults. Environment variables override the file:",
        "# CALLSURE_<SECTION>__<KEY>, for example CALLSURE_SERVER__GRPC_ADDRESS.",
    ]
    for section in SECTIONS.values():
        lines += ["", f"# {section.help}", f"[{section.name}]"]
        for setting in section.settings:
            lines.append(f"# {setting.help}")
            lines.append(f"{setting.name} = {_toml_value(setting.default)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
