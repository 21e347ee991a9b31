"""``key=value`` arguments of the small CLIs (``vaegan-eval``, ``vaegan-sample``).

Same syntax as the training command line, checked against a table of allowed keys and
types; anything under ``dataset.`` is passed on to the saved run's config (``dataset.root=``
when the data lives elsewhere on this machine).
"""

from __future__ import annotations

from typing import Any

from ..config.checks import ConfigError


def parse_settings(pairs: list[str], allowed: dict[str, tuple[type, Any]]) -> tuple[dict[str, Any], list[str]]:
    """``allowed``: key -> (type, default). Returns (settings, dataset overrides)."""
    settings = {key: default for key, (_, default) in allowed.items()}
    overrides = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(pair, "expected key=value")
        if key.startswith("dataset."):
            overrides.append(pair)
            continue
        if key not in allowed:
            raise ConfigError(key, f"unknown setting; allowed: {', '.join(allowed)}, dataset.<key>")
        kind = allowed[key][0]
        try:
            if kind is list:
                settings[key] = [v for v in value.strip("[]").split(",") if v]
            elif kind is bool:
                if value.lower() not in ("true", "false"):
                    raise ValueError(value)
                settings[key] = value.lower() == "true"
            else:
                settings[key] = kind(value)
        except ValueError:
            raise ConfigError(key, f"must be {kind.__name__}, got {value!r}") from None
    return settings, overrides
