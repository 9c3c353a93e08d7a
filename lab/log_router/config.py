"""fluent-bit's classic configuration format, as FireLens writes it: `[SECTION]` headers, then
indented `Key value` lines; `#` comments; `@INCLUDE path` pulls another file in place; keys are
case-insensitive (fluent-bit compares property names without case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """The configuration text cannot be what fluent-bit reads, or asks for what the stand-in lacks."""


@dataclass
class Section:
    kind: str  # SERVICE, INPUT, FILTER, OUTPUT (upper case)
    props: dict[str, str] = field(default_factory=dict)  # lower-cased key -> value
    # Keys that may repeat (record_modifier's `Record`), in order.
    repeated: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.props.get("name", "")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.props.get(key.lower(), default)


_REPEATABLE = frozenset({"record", "remove_key", "allowlist_key", "header"})


def parse(text: str, base_dir: Path | None = None, _depth: int = 0) -> list[Section]:
    """Sections in file order; ConfigError names the line that is wrong."""
    if _depth > 8:
        raise ConfigError("@INCLUDE nested more than 8 deep")
    sections: list[Section] = []
    current: Section | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("@INCLUDE"):
            target = Path(line.split(None, 1)[1].strip()) if len(line.split()) > 1 else None
            if target is None:
                raise ConfigError(f"line {lineno}: @INCLUDE without a path")
            if not target.is_absolute() and base_dir is not None:
                target = base_dir / target
            try:
                included = target.read_text()
            except OSError as exc:
                raise ConfigError(f"line {lineno}: cannot read included file {target}: {exc}") from None
            sections.extend(parse(included, target.parent, _depth + 1))
            current = None
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ConfigError(f"line {lineno}: section header {line!r} is not closed")
            current = Section(line[1:-1].strip().upper())
            sections.append(current)
            continue
        if current is None:
            raise ConfigError(f"line {lineno}: {line!r} is outside any [SECTION]")
        key, _, value = line.partition(" ")
        key = key.lower()
        value = value.strip()
        if key in _REPEATABLE:
            current.repeated.append((key, value))
        else:
            current.props[key] = value
    return sections


def render(sections: list[Section]) -> str:
    """The text of `sections` (the inverse of parse, for sections built in code)."""
    out = []
    for s in sections:
        out.append(f"[{s.kind}]")
        width = max([len(k) for k in s.props] + [len(k) for k, _ in s.repeated] + [4])
        for key, value in s.props.items():
            out.append(f"    {_display(key).ljust(width)} {value}")
        for key, value in s.repeated:
            out.append(f"    {_display(key).ljust(width)} {value}")
        out.append("")
    return "\n".join(out)


def _display(key: str) -> str:
    # fluent-bit ignores case; FireLens writes these capitalised.
    return key.capitalize() if key in ("name", "match", "record", "listen", "port", "host", "tls") else key


def is_on(value: str | None, default: bool = False) -> bool:
    """fluent-bit's boolean forms."""
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{value!r} is not a boolean (on/off, true/false, yes/no)")
