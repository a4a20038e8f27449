"""Reading minibtc.conf (stdlib only, so minibtc-cli can use it without slowing start-up)."""

from __future__ import annotations


class ConfigError(Exception):
    """Start-up must stop: the message names the option."""


def parse_conf_file(text: str, path: str) -> dict[str, dict[str, list[str]]]:
    """minibtc.conf -> {section: {name: [values]}}; the top level is section ""."""
    sections: dict[str, dict[str, list[str]]] = {"": {}}
    current = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            sections.setdefault(current, {})
            continue
        if "=" not in line:
            raise ConfigError(f"Error reading configuration file: parse error on line {n}: "
                              f"{raw.strip()}, if you intended to specify a negated option, "
                              f"use -{line}=1 instead ({path})")
        name, value = (s.strip() for s in line.split("=", 1))
        if "." in name:  # regtest.rpcport=... form
            sec, name = name.split(".", 1)
            sections.setdefault(sec, {}).setdefault(name, []).append(value)
        else:
            sections[current].setdefault(name, []).append(value)
    return sections
