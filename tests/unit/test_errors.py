"""The error tree: stable unique codes, sensible HTTP statuses, one public shape."""

from __future__ import annotations

from typing import Any

import pytest

from pagemill import errors
from pagemill.errors import (
    AccessError,
    DependencyUnavailable,
    InputError,
    NotFound,
    PagemillError,
    ProcessingError,
    RateLimited,
    TransientError,
)


def all_error_classes() -> list[type[PagemillError]]:
    """PagemillError and every subclass, however deep."""
    found: list[type[PagemillError]] = []
    pending: list[type[PagemillError]] = [PagemillError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


ERROR_CLASSES = all_error_classes()


def required_details(cls: type[PagemillError]) -> dict[str, Any]:
    """The keyword arguments a class cannot be made without (they are details too)."""
    return {"retry_after_s": 30} if issubclass(cls, RateLimited) else {}


def test_the_tree_is_found() -> None:
    # Guard against the walk silently finding nothing: every public error class of the module is in it.
    in_module = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, PagemillError) and obj.__module__ == errors.__name__
    }
    assert in_module <= set(ERROR_CLASSES)
    assert len(in_module) >= 18


def test_every_code_is_unique() -> None:
    codes: dict[str, str] = {}
    for cls in ERROR_CLASSES:
        assert cls.code not in codes, f"{cls.__name__} reuses {cls.code} of {codes.get(cls.code)}"
        codes[cls.code] = cls.__name__


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_code_and_status_are_well_formed(cls: type[PagemillError]) -> None:
    assert cls.code.isupper() and cls.code.replace("_", "").isalpha(), cls.code
    assert 400 <= cls.http_status <= 599
    assert cls.default_message and cls.default_message.endswith("."), cls.default_message


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_each_branch_keeps_its_contract(cls: type[PagemillError]) -> None:
    if issubclass(cls, InputError):
        assert 400 <= cls.http_status < 500 and not cls.retryable
    elif issubclass(cls, TransientError):
        assert cls.http_status == 503 and cls.retryable
    elif issubclass(cls, ProcessingError):
        assert cls.http_status >= 500 and not cls.retryable
    elif issubclass(cls, AccessError):
        assert 400 <= cls.http_status < 500 and not cls.retryable
        assert cls.http_status in (401, 403, 429), cls.http_status
    else:
        assert cls is PagemillError
        assert cls.code == "INTERNAL_ERROR" and cls.http_status == 500


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_to_dict_is_the_public_error_object(cls: type[PagemillError]) -> None:
    required = required_details(cls)
    default = cls(**required)
    assert default.to_dict() == {"code": cls.code, "message": cls.default_message, "details": required}
    assert str(default) == cls.default_message
    custom = cls("Something specific.", page=3, field="x", **required)
    assert custom.to_dict() == {
        "code": cls.code,
        "message": "Something specific.",
        "details": {"page": 3, "field": "x", **required},
    }


def test_known_statuses() -> None:
    assert NotFound.http_status == 404
    assert errors.Conflict.http_status == 409
    assert errors.FileTooLarge.http_status == 413
    assert errors.UnsupportedType.http_status == 415
    assert errors.ValidationFailed.http_status == 422
    assert DependencyUnavailable.code == "SERVICE_UNAVAILABLE"
    assert errors.Unauthorized.http_status == 401
    assert errors.Forbidden.http_status == 403
    assert RateLimited.http_status == 429
    assert errors.QuotaExceeded.http_status == 429


def test_error_headers() -> None:
    # Retryable errors say when to retry; a 401 names its scheme; a 429 says when the window frees up.
    assert DependencyUnavailable().headers() == {"Retry-After": "5"}
    assert NotFound().headers() == {}
    assert errors.Unauthorized().headers() == {"WWW-Authenticate": 'Bearer realm="pagemill"'}
    assert RateLimited(retry_after_s=42).headers() == {"Retry-After": "42"}
    assert errors.QuotaExceeded(retry_after_s=0).headers() == {"Retry-After": "1"}


def test_details_are_not_shared_between_instances() -> None:
    first = NotFound()
    first.details["job_id"] = "x"
    assert NotFound().details == {}
