"""Write `.env.example` and docs/operations/configuration.md from config/settings.py.

    python -m config.reference           # (re)write both files (`make config-docs`)
    python -m config.reference --check   # exit 1, naming them, when either is out of date

Both files are generated from the settings' declarations (variable, type, default,
description), so a setting is documented once, where it is declared. Nothing here reads
the environment: the output is the same on every machine, and no secret's value (a
generated development secret, a deployment's) can end up in it.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from config.settings import (
    DOCUMENTED_GROUPS,
    SettingsGroup,
    doc_of,
    env_name_of,
    value_type,
)

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ".env.example"
REFERENCE_PAGE = "docs/operations/configuration.md"
COMMAND = "make config-docs"
MODULE_COMMAND = "python -m config.reference"
WIDTH = 92
# Values a shell (`make run` sources .env) and docker compose both take as they are.
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_./:@,=+%-]*")


def variables(group: type[SettingsGroup]) -> list[tuple[str, FieldInfo]]:
    return [(env_name_of(field), field) for field in group.model_fields.values()]


def env_value(value: Any) -> str:
    """A default as it is written in an environment variable."""
    if value is None:
        return ""
    if isinstance(value, tuple | list):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(
            alias if alias == model else f"{alias}={model}" for alias, model in value.items()
        )
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def type_text(field: FieldInfo) -> str:
    doc = doc_of(field)
    if "kind" in doc:
        return doc["kind"]
    kind = value_type(field.annotation)
    if kind is typing.Literal:
        return " or ".join(f"`{choice}`" for choice in typing.get_args(field.annotation))
    names = {int: "integer", float: "number", str: "string", tuple: "comma-separated list"}
    return names[kind]


def default_text(field: FieldInfo) -> str:
    doc = doc_of(field)
    if "default_text" in doc:
        return doc["default_text"]
    value = env_value(field.default)
    return f"`{value}`" if value else "empty"


def production_note(field: FieldInfo) -> str:
    reason = doc_of(field).get("production")
    return f"Required in production: {reason}." if reason else ""


def required_in_production() -> list[tuple[str, FieldInfo]]:
    return [
        (name, field)
        for group in DOCUMENTED_GROUPS
        for name, field in variables(group)
        if doc_of(field).get("production")
    ]


# --- .env.example -----------------------------------------------------------------------------


def comment(text: str) -> list[str]:
    return textwrap.wrap(
        text, WIDTH, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
    )


def env_example() -> str:
    required = ", ".join(name for name, _ in required_in_production())
    lines = [
        "# LLM Gateway configuration. Copy to .env and adjust; every variable has a default,",
        f"# except the secrets production requires ({required}).",
        "# `flask` commands, `make run` and `make dev` read .env, and docker compose passes it to",
        "# every app container; in other setups, export the variables.",
        "#",
        f"# Generated from config/settings.py by `{COMMAND}` ({MODULE_COMMAND}):",
        f"# edit the settings there, not this file. {REFERENCE_PAGE} describes them all.",
    ]
    for group in DOCUMENTED_GROUPS:
        heading = f"# --- {group.title} "
        lines += ["", heading + "-" * max(3, WIDTH - len(heading))]
        intro = " ".join(part for part in (read_by_text(group), group.about) if part)
        if intro:
            lines += comment(intro)
        for name, field in variables(group):
            doc = doc_of(field)
            lines.append("")
            lines += comment(" ".join(filter(None, [field.description, production_note(field)])))
            if doc.get("example"):
                lines.append(f"# {name}={doc['example']}")
            value = "" if doc.get("secret") else env_value(field.default)
            commented = doc.get("commented") or not PLAIN_VALUE.fullmatch(value)
            lines.append(f"{'# ' if commented else ''}{name}={value}")
    return "\n".join(lines) + "\n"


def read_by_text(group: type[SettingsGroup]) -> str:
    return f"Read by {group.read_by}." if group.read_by else ""


# --- docs/operations/configuration.md -----------------------------------------------------------


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_page() -> str:
    lines = [
        "# Configuration",
        "",
        f"> Generated from `config/settings.py` by `{COMMAND}` (`{MODULE_COMMAND}`),",
        "> which also writes `.env.example`: edit a setting's declaration there and run it",
        "> again, never this page. `tests/test_config_reference.py` fails while this page is",
        "> out of date.",
        "",
        "Every setting is an environment variable. `make dev`, `make run` and the `flask`",
        "commands read `.env`; docker compose passes `.env` to every app container (the compose",
        "file itself fixes `APP_ENV=production`, `PROXY_FIX_HOPS=1` and the services'",
        "addresses). Start from `.env.example`, which lists every variable with its default.",
        "",
        "A value that cannot work (a number that does not parse, a limit out of range, settings",
        "that contradict each other, a weak `JWT_SECRET` in production) stops the API and the",
        "workers at start-up, with one line per problem naming the variable (never repeating a",
        "secret).",
        "",
        "## Required in production",
        "",
    ]
    lines += [
        f"- `{name}`: {doc_of(field)['production']}." for name, field in required_in_production()
    ]
    for group in DOCUMENTED_GROUPS:
        lines += ["", f"## {group.title}", ""]
        read_by = f"_{read_by_text(group)}_" if group.read_by else ""
        intro = " ".join(part for part in (read_by, group.about) if part)
        if intro:
            lines += [*textwrap.wrap(intro, WIDTH, break_on_hyphens=False), ""]
        lines += ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for name, field in variables(group):
            doc = doc_of(field)
            variable = f"`{name}`"
            if doc.get("production"):
                variable += "<br>**required in production**"
            description = field.description or ""
            if doc.get("example"):
                description += f" Example: `{doc['example']}`."
            row = [variable, type_text(field), default_text(field), description]
            lines.append("| " + " | ".join(cell(part) for part in row) + " |")
    lines += [
        "",
        "## In the code",
        "",
        "The settings are declared in `config/settings.py`, one model per section above, and",
        "the code reads them typed: `get_settings().queue.time_limit` in an app context, or",
        "`get_settings(app)` (config.settings). The Flask config keeps each one under its",
        "variable's name too, for the extensions that read their own keys (SQLAlchemy, the",
        "rate limiter, Celery, flask-smorest) and for the CLI.",
    ]
    return "\n".join(lines) + "\n"


OUTPUTS: dict[str, Callable[[], str]] = {
    ENV_EXAMPLE: env_example,
    REFERENCE_PAGE: reference_page,
}


def stale(root: Path | None = None) -> dict[str, str]:
    """Each generated file that differs from what the settings give now → a short diff."""
    root = root or ROOT
    found = {}
    for relative, generate in OUTPUTS.items():
        path = root / relative
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        wanted = generate()
        if current != wanted:
            diff = difflib.unified_diff(
                current.splitlines(),
                wanted.splitlines(),
                f"{relative} (in the checkout)",
                f"{relative} (generated)",
                lineterm="",
            )
            found[relative] = "\n".join(list(diff)[:60])
    return found


def write(root: Path | None = None) -> list[str]:
    """Write the files that changed; their paths."""
    root = root or ROOT
    written = []
    for relative, generate in OUTPUTS.items():
        path = root / relative
        text = generate()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(relative)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=MODULE_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file is out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        if found := stale():
            print(f"out of date (run `{COMMAND}`): {', '.join(found)}", file=sys.stderr)
            return 1
        print("configuration reference is up to date")
        return 0
    written = write()
    print(
        f"wrote {', '.join(written)}" if written else "configuration reference already up to date"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
