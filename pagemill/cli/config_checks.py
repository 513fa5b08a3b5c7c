"""What `pagemill config check` looks at: the TOML file and the ``PAGEMILL_*`` variables (names no setting
knows are reported: a typo there is otherwise ignored in silence), then every connection the settings name,
each timed: the database and its schema, the broker, the blob store, and each engine of the OCR chain (CPU
engines read a small generated page; model servers are asked which models they serve)."""

from __future__ import annotations

import difflib
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from pagemill.settings import Settings

CLI_VARIABLES = frozenset({"PAGEMILL_CONFIG_FILE", "PAGEMILL_API_URL", "PAGEMILL_API_KEY"})
"""``PAGEMILL_*`` variables that are not settings: the file's name, and the API client's server and key."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: what was checked, whether it is fine, and what was found."""

    name: str
    ok: bool
    detail: str
    warning: bool = False
    """A finding that is reported but does not fail the check."""
    latency: str | None = None

    def line(self) -> str:
        """The report line: ``name       ok (3 ms): detail``."""
        state = "warning" if self.warning else "ok" if self.ok else "FAILED"
        took = f" ({self.latency})" if self.latency else ""
        return f"{self.name:10} {state}{took}: {self.detail}"


def file_findings(path: Path) -> tuple[list[Finding], bool]:
    """The TOML file: it exists, parses, and names only known settings. (findings, whether it loads)."""
    if not path.is_file():
        return [Finding("config", False, f"{path}: no such file (PAGEMILL_CONFIG_FILE)")], False
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return [Finding("config", False, f"{path}: not valid TOML: {exc}")], False
    unknown = unknown_keys(data, Settings)
    findings = [Finding("config", True, f"{path}: read")]
    findings += [Finding("config", False, f"{path}: {message}") for message in unknown]
    return findings, True


def unknown_keys(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    """Messages for the keys of ``data`` (a TOML table) that name no field of ``model``, nested tables
    checked against nested groups; a close field name is suggested."""
    messages: list[str] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            messages.append(
                f"unknown setting {prefix}{key}{_did_you_mean(key, list(model.model_fields), prefix)}"
            )
            continue
        group = _model_of(field.annotation)
        if group is not None and isinstance(value, dict):
            messages += unknown_keys(value, group, f"{prefix}{key}.")
    return messages


def environment_findings(environ: dict[str, str]) -> list[Finding]:
    """Warnings for ``PAGEMILL_*`` variables that name no setting (they are ignored when settings load)."""
    findings: list[Finding] = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith("PAGEMILL_") or upper in CLI_VARIABLES:
            continue
        path = upper[len("PAGEMILL_") :].lower().split("__")
        problem = _unknown_path(path, Settings)
        if problem is not None:
            findings.append(Finding("env", True, f"{name} is not a setting: ignored{problem}", warning=True))
    return findings


def _unknown_path(path: list[str], model: type[BaseModel], parents: tuple[str, ...] = ()) -> str | None:
    """None when ``path`` names a setting (or a whole group, given as JSON), else a hint naming the closest
    variable."""
    field = model.model_fields.get(path[0])
    if field is None:
        hint = difflib.get_close_matches(path[0], list(model.model_fields), n=1)
        if not hint:
            return ""
        # The rest of the name too when it fits that group: PAGEMILL_DATABSE__URL -> ..._DATABASE__URL.
        fixed = [hint[0], *path[1:]] if _unknown_path([hint[0], *path[1:]], model) is None else hint
        return f" (did you mean PAGEMILL_{'__'.join([*parents, *fixed]).upper()}?)"
    group = _model_of(field.annotation)
    if len(path) == 1:
        return None
    return "" if group is None else _unknown_path(path[1:], group, (*parents, path[0]))


def _did_you_mean(key: str, names: list[str], prefix: str) -> str:
    hint = difflib.get_close_matches(key, names, n=1)
    return f" (did you mean {prefix}{hint[0]}?)" if hint else ""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings group a field holds (``X`` or ``X | None``), or None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, UnionType):
        groups = [arg for arg in get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        return groups[0] if len(groups) == 1 else None
    return None


# --- connections -----------------------------------------------------------------------------------------


def timed(name: str, check: Callable[[], str]) -> Finding:
    """Run ``check`` (it returns what it found, or raises); a finding with its latency."""
    started = time.perf_counter()
    try:
        detail = check()
    except Exception as exc:  # a check reports; it never raises
        return Finding(name, False, _describe(exc), latency=_ms(started))
    return Finding(name, True, detail, latency=_ms(started))


def database_check(settings: Settings) -> Callable[[], str]:
    """The database answers, and its schema is this release's (else: run `pagemill migrate`)."""

    def check() -> str:
        from pagemill.db import get_engine
        from pagemill.migrate import masked_database_url, require_migrated, schema_state
        from pagemill.observability.checks import check_database

        check_database()
        require_migrated(settings, get_engine())
        return f"{masked_database_url(settings)}, schema at {schema_state(get_engine()).current} (newest)"

    return check


def broker_check(settings: Settings) -> Callable[[], str]:
    """The broker accepts a connection."""

    def check() -> str:
        from sqlalchemy.engine import make_url

        from pagemill.observability.checks import check_broker

        check_broker()
        return make_url(settings.broker_url).render_as_string(hide_password=True)

    return check


def storage_check(settings: Settings) -> Callable[[], str]:
    """The blob store answers (the bucket is reachable; the folder is writable)."""

    def check() -> str:
        from pagemill.observability.checks import check_storage

        check_storage()
        if settings.storage.backend == "s3":
            where = settings.storage.s3_endpoint_url or "AWS"
            return f"s3 bucket {settings.storage.s3_bucket} at {where}"
        return f"local folder {settings.blob_path}"

    return check


def engine_check(name: str, settings: Settings) -> Callable[[], str]:
    """A CPU engine reads a generated page; a model server lists the model it should serve."""

    def check() -> str:
        from pagemill.engines.registry import (
            MODEL_ENGINES,
            base_url_setting,
            get_engine,
            model_engine_settings,
        )

        if name in MODEL_ENGINES:
            server = model_engine_settings(name, settings)
            if not server.base_url:
                raise _Failed(f"no server configured: set {base_url_setting(name)[1]}")
            health = get_engine(name, settings).check()  # type: ignore[attr-defined]
            if not health.ok:
                raise _Failed(f"{server.base_url}: {health.detail}")
            return f"{server.base_url} serves {server.model}"
        result = get_engine(name, settings).recognize(_sample_page())
        read = " ".join(result.text.split())
        return f"{result.model or name} read the test page as {read!r}"

    return check


class _Failed(Exception):
    """A check failure whose message is safe to show (model server base URLs carry no credentials)."""


def _describe(exc: BaseException) -> str:
    """What to show about a failed check: our own messages; of anything else only its type (its text may
    hold a URL with a password)."""
    from pagemill.errors import PagemillError

    if isinstance(exc, PagemillError):
        return exc.message
    return str(exc) if isinstance(exc, _Failed) else type(exc).__name__


def _sample_page() -> Any:
    """A small page of printed text, made here (nothing is read from disk or the network)."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (900, 220), 255)
    ImageDraw.Draw(image).text((40, 70), "Pagemill check 2024", font=ImageFont.load_default(size=64), fill=0)
    return image


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"
