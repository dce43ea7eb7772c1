"""Settings files: YAML (``.yaml``/``.yml``, read with ``yaml.safe_load``) and TOML (``.toml``).

A file holds a mapping of settings (keys: the names of :class:`~tg_cnn2gnn.run.config.Settings`
fields, ``-`` or ``_``; values of the setting's type, lists for ``head_hidden`` and
``mechanisms``). Keys may also sit in a section named after a command (``distill:`` in
YAML, ``[distill]`` in TOML), which overrides the top level for that command; other
commands' sections are ignored. Unknown keys, wrong types, unparsable files and YAML tags
that would construct Python objects (``!!python/...``) are refused with one
:class:`~tg_cnn2gnn.run.config.SettingsError` line naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tg_cnn2gnn.run.config import SETTING_FIELDS, Settings, SettingsError, coerce

#: Section names a settings file may hold (one per command).
COMMANDS = ("train-teacher", "train_teacher", "distill", "evaluate", "benchmark", "example")
#: Keys that are not settings but are accepted in an ``evaluate`` section.
EXTRA_KEYS = ("which",)


def read_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """The raw mapping of a YAML or TOML file (empty file: ``{}``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SettingsError(f"config file {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SettingsError(f"config file {path}: unknown file type {suffix or '(none)'!r}; use .yaml, .yml or .toml")
    try:
        if suffix == ".toml":
            import tomllib
            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            import yaml
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
    except Exception as e:  # noqa: BLE001 - any parse error -> one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SettingsError(f"config file {path}: cannot parse it ({type(e).__name__}: {first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: the file must hold a mapping of settings, got {type(data).__name__}")
    return data


def load_config(path: str | os.PathLike, command: str | None = None) -> dict[str, Any]:
    """``{setting: value}`` of a settings file: the top level, then the section named
    ``command`` (if any) on top. Values are coerced to the settings' types; ``which``
    (an ``evaluate`` option) is passed through as given."""
    data = read_mapping(path)
    out = {str(k).replace("-", "_"): v for k, v in data.items() if not (isinstance(v, dict) and k in COMMANDS)}
    if command is not None:
        for key in dict.fromkeys((command, command.replace("-", "_"))):
            section = data.get(key)
            if isinstance(section, dict):
                out.update({str(k).replace("-", "_"): v for k, v in section.items()})
    for key, value in out.items():
        if key in EXTRA_KEYS:
            continue
        if key not in SETTING_FIELDS:
            raise SettingsError(f"unknown setting {key!r} in {path}; valid settings: {', '.join(SETTING_FIELDS)}")
        out[key] = coerce(key, value, source=str(path))
    return out


def settings_from_file(path: str | os.PathLike, command: str | None = None, **overrides: Any) -> Settings:
    """:class:`Settings` of a file (``command``'s section applied), ``overrides`` on top (unvalidated)."""
    values = {k: v for k, v in load_config(path, command).items() if k not in EXTRA_KEYS}
    values.update({k: coerce(k, v) for k, v in overrides.items()})
    return Settings(**values)


def dump_yaml(settings: Settings, *, header: str | None = None) -> str:
    """A YAML text of every setting that :func:`load_config` reads back to the same :class:`Settings`."""
    import yaml
    text = yaml.safe_dump(settings.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True)
    return (f"# {header}\n" if header else "") + text
