"""Write docs/configuration.md from the pydantic ``Settings`` model, so the reference never drifts from code.

python scripts/gen_config_docs.py           # (re)write docs/configuration.md
python scripts/gen_config_docs.py --check   # exit 1 if docs/configuration.md is not current
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

from generated_file import write_or_check  # scripts/ is on sys.path when run as a file
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pagemill.settings import Settings  # noqa: E402

OUTPUT = REPO_ROOT / "docs" / "configuration.md"
ENV_PREFIX = "PAGEMILL_"
ENV_NESTED_DELIMITER = "__"


@dataclass(frozen=True)
class SettingDoc:
    """One leaf setting, as documented."""

    group: str | None
    name: str
    env: str
    toml: str
    type: str
    default: str
    description: str


def _is_model(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _type_name(annotation: Any) -> str:
    """A short, readable name for a field's type."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        values = typing.get_args(annotation)
        return " \\| ".join(f'`"{value}"`' if isinstance(value, str) else f"`{value}`" for value in values)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        names = [_type_name(arg) for arg in args if arg is not type(None)]
        optional = " (optional)" if type(None) in args else ""
        return " \\| ".join(names) + optional
    if origin is list:
        (item,) = typing.get_args(annotation)
        return f"list of {_type_name(item)}"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return " \\| ".join(f"`{member.value}`" for member in annotation)
        if issubclass(annotation, Path):
            return "path"
        if issubclass(annotation, SecretStr):
            return "secret `str`"
        return f"`{annotation.__name__}`"
    return str(annotation)


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    return ", ".join(parts)


def _human_bytes(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"


def _default(name: str, value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        return f"`{value.value}`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, int) and name.endswith("_bytes"):
        return f"`{value}` ({_human_bytes(value)})"
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{item}"' if isinstance(item, str) else str(item) for item in value) + "]`"
    return f"`{value}`"


@dataclass(frozen=True)
class GroupDoc:
    """A group of settings (a TOML table), with its leaf settings; ``path`` None is the top level."""

    path: str | None
    doc: str
    settings: list[SettingDoc]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def iter_groups(
    model: type[BaseModel] = Settings,
    path: str | None = None,
    defaults: BaseModel | None = None,
    doc: str = "Settings that are not in a group.",
) -> Iterator[GroupDoc]:
    """Every group of ``model``, depth first in declaration order, each with its leaf settings.

    ``defaults`` is the group's default value as its parent declares it: a parent may give a nested group
    other defaults than the group's class does (``engines.remote_openai`` is an ``OpenAiEngineSettings``
    with another model), and the documented default must be the one in force.
    """
    settings: list[SettingDoc] = []
    nested: list[tuple[str, FieldInfo, type[BaseModel], Any]] = []
    parts = [] if path is None else path.split(".")
    for name, field in model.model_fields.items():
        annotation = field.annotation
        value = (
            getattr(defaults, name) if defaults is not None else field.get_default(call_default_factory=True)
        )
        if _is_model(annotation):
            nested.append((name, field, annotation, value))
            continue
        type_text = _type_name(annotation)
        limits = _constraints(field)
        if limits:
            type_text += f", {limits}"
        settings.append(
            SettingDoc(
                group=path,
                name=name,
                env=ENV_PREFIX + ENV_NESTED_DELIMITER.join(part.upper() for part in [*parts, name]),
                toml=f"`{name}` (top level)" if path is None else f"`[{path}]` `{name}`",
                type=type_text,
                default=_default(name, value),
                description=(field.description or "").replace("|", "\\|"),
            )
        )
    yield GroupDoc(path=path, doc=doc, settings=settings)
    for name, field, annotation, value in nested:
        child = name if path is None else f"{path}.{name}"
        child_doc = _first_line(field.description) or _first_line(annotation.__doc__)
        yield from iter_groups(annotation, child, value if isinstance(value, BaseModel) else None, child_doc)


def iter_settings() -> Iterator[SettingDoc]:
    """Every leaf setting, nested groups included, in document order."""
    for group in iter_groups():
        yield from group.settings


INTRO = """\
# Configuration

<!-- Generated by scripts/gen_config_docs.py from pagemill/settings/. Do not edit by hand:
     change the Field descriptions in the code and run `python scripts/gen_config_docs.py`. -->

Every Pagemill process (API, worker, `pagemill up`, `pagemill convert`) reads the same settings.

## Where settings come from

Highest priority first:

1. **Environment variables.** The prefix is `PAGEMILL_`. A setting in a group joins the group name and the
   setting name with `__` (two underscores): `PAGEMILL_STORAGE__S3_BUCKET=documents`; a group inside a
   group joins every level: `PAGEMILL_ENGINES__VLLM__BASE_URL`. Top-level settings have no group part:
   `PAGEMILL_DATA_DIR=/var/lib/pagemill`. Names are not case-sensitive.
2. **A TOML file** named by the environment variable `PAGEMILL_CONFIG_FILE`. Groups are TOML tables, with
   the same names as in the tables below (a group inside a group is a dotted table: `[engines.vllm]`).
   There is no default file: without `PAGEMILL_CONFIG_FILE`, no file is read. The variable is read when
   the settings module is first imported, so set it in the process environment, not later from code.
3. **The defaults** listed below.

Settings are loaded once per process. Restart a process to apply a change.

Example TOML file:

```toml
data_dir = "/var/lib/pagemill"
log_json = true

[database]
url = "postgresql+psycopg://pagemill:secret@db.internal:5432/pagemill"

[broker]
url = "redis://redis.internal:6379/0"

[storage]
backend = "s3"
s3_bucket = "pagemill"
s3_endpoint_url = "http://minio.internal:9000"

[ocr]
languages = "eng+deu"
```

Values in environment variables are plain strings: `true`/`false` for booleans, digits for numbers,
JSON for lists (`PAGEMILL_ENGINES__FALLBACK='["remote-openai"]'`). Giving one setting of a group keeps the
group's other defaults.
An "unset" default means the setting is absent unless you give it.

`pagemill config show` prints the settings in force (secrets and passwords masked; the data dir, database
and broker URLs and blob folder as resolved, never null). `pagemill config check` tests the database (and
that it is migrated), broker and blob store connections and exits 1 if one fails.

## Embedded and distributed mode

The defaults are the **embedded mode**: no external service. Everything lives under `data_dir`:

| part | embedded default |
| --- | --- |
| database | SQLite file `data_dir/pagemill.sqlite3` |
| broker | SQLite-backed Celery broker `data_dir/broker.sqlite3` |
| blob store | folder `data_dir/blobs` (or `storage.local_path`) |

The **distributed mode** uses the same code with three settings changed: `database.url` (Postgres),
`broker.url` (Redis) and `storage.backend = "s3"` with the `storage.s3_*` settings (AWS S3 or MinIO).
A process is in embedded mode only when all three are left at their defaults. In distributed mode every
API replica and every worker must see the same values for these settings.
"""


def render() -> str:
    """The whole of docs/configuration.md."""
    lines = [INTRO.rstrip("\n"), "", "## Reference", ""]
    for group in iter_groups():
        depth = 0 if group.path is None else group.path.count(".")
        title = "Top level" if group.path is None else f"`[{group.path}]`"
        lines += [f"{'#' * (3 + depth)} {title}", "", group.doc, ""]
        if not group.settings:
            continue
        lines += [
            "| setting | environment variable | TOML key | type | default | description |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for item in group.settings:
            name = item.name if group.path is None else f"{group.path}.{item.name}"
            lines.append(
                f"| `{name}` | `{item.env}` | {item.toml} | {item.type} | {item.default} "
                f"| {item.description} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the file, or with ``--check`` report whether it is current."""
    return write_or_check(__doc__ or "", OUTPUT, render, argv)


if __name__ == "__main__":
    sys.exit(main())
