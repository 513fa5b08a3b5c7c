"""Which failures are dead letters, their category, and the fingerprint that groups the same problem."""

from __future__ import annotations

import pytest

from pagemill import errors
from pagemill.dead_letters.categories import category_of, fingerprint, root_cause, traceback_text
from pagemill.models import DeadLetterCategory
from tests.unit.test_errors import ERROR_CLASSES, required_details

CATEGORIES = {
    errors.WorkerCrashed: DeadLetterCategory.CRASH,
    errors.ProcessingTimeout: DeadLetterCategory.TIMEOUT,
    errors.EngineFailed: DeadLetterCategory.ENGINE,
    errors.EngineUnavailable: DeadLetterCategory.ENGINE,
    errors.CorruptFile: DeadLetterCategory.DECODE,
    errors.ProcessingError: DeadLetterCategory.DECODE,
    errors.JobStalled: DeadLetterCategory.OTHER,
    errors.DependencyUnavailable: DeadLetterCategory.OTHER,
    errors.TransientError: DeadLetterCategory.OTHER,
}
# What the client did wrong: a replay would fail the same way.
NOT_DEAD_LETTERS = [
    errors.EmptyFile,
    errors.UnsupportedType,
    errors.EncryptedFile,
    errors.WrongPassword,
    errors.TooManyPages,
    errors.ImageTooLarge,
    errors.InvalidPageRange,
    errors.UrlUnreachable,
    errors.UrlTimeout,
    errors.SecretsNotConfigured,
    errors.Unauthorized,
]


@pytest.mark.parametrize("cls", list(CATEGORIES), ids=lambda cls: cls.__name__)
def test_failures_that_a_replay_may_fix_are_dead_letters_of_their_category(
    cls: type[errors.PagemillError],
) -> None:
    assert category_of(cls()) == CATEGORIES[cls]


@pytest.mark.parametrize("cls", NOT_DEAD_LETTERS, ids=lambda cls: cls.__name__)
def test_the_clients_own_errors_are_not_dead_letters(cls: type[errors.PagemillError]) -> None:
    assert category_of(cls(**required_details(cls))) is None


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_class_is_decided(cls: type[errors.PagemillError]) -> None:
    """A new error class lands on one side on purpose: InputErrors (but CORRUPT_FILE) and AccessErrors are
    never dead letters; everything a worker gives up with is."""
    category = category_of(cls(**required_details(cls)))
    if issubclass(cls, errors.AccessError) or (
        issubclass(cls, errors.InputError) and cls is not errors.CorruptFile
    ):
        assert category is None
    else:
        assert category in set(DeadLetterCategory)


def _raise_in_parser(message: str) -> errors.ProcessingError:
    """The catch-all of the page loop: an unexpected exception, wrapped, its cause kept."""
    try:
        raise ValueError(message)
    except ValueError as exc:
        error = errors.ProcessingError("This page could not be read.", page=int(message))
        error.__cause__ = exc
        return error


def _raise_elsewhere() -> errors.ProcessingError:
    try:
        int("not a number")
    except ValueError as exc:
        error = errors.ProcessingError("This page could not be read.", page=1)
        error.__cause__ = exc
        return error
    raise AssertionError("unreachable")


def test_the_same_bug_on_other_pages_has_one_fingerprint_and_another_bug_another() -> None:
    page_two, page_three = _raise_in_parser("2"), _raise_in_parser("3")
    assert fingerprint(page_two) == fingerprint(page_three)  # page numbers and messages do not count
    assert fingerprint(page_two) != fingerprint(_raise_elsewhere())  # other frames: another problem
    assert len(fingerprint(page_two)) == 16


def test_an_engines_reason_tells_failures_apart() -> None:
    truncated = errors.EngineFailed(engine="vllm", reason="truncated", page=1)
    looping = errors.EngineFailed(engine="vllm", reason="degenerate_repetition", page=1)
    assert fingerprint(truncated) != fingerprint(looping)
    assert fingerprint(truncated) == fingerprint(
        errors.EngineFailed(engine="vllm", reason="truncated", page=9)
    )


def test_timeouts_group_by_kind_wherever_they_were_noticed() -> None:
    def noticed_in_a_call() -> errors.ProcessingTimeout:
        try:
            raise errors.ProcessingTimeout(kind="document_page", limit_s=150, page=1)
        except errors.ProcessingTimeout as exc:
            return exc

    made_by_the_loop = errors.ProcessingTimeout(kind="document_page", limit_s=180, page=2)
    assert fingerprint(noticed_in_a_call()) == fingerprint(made_by_the_loop)
    assert fingerprint(made_by_the_loop) != fingerprint(errors.ProcessingTimeout(kind="text_chunk", page=2))


def test_a_crash_has_no_traceback_and_groups_by_code() -> None:
    crashed = errors.WorkerCrashed(attempts=3)
    assert traceback_text(crashed, 8000) is None
    assert root_cause(crashed) is crashed
    assert fingerprint(crashed) == fingerprint(errors.WorkerCrashed(attempts=5))


def test_the_traceback_kept_is_the_end_of_the_chain() -> None:
    error = _raise_in_parser("4")
    text = traceback_text(error, 8000)
    assert text is not None
    assert "ValueError: 4" in text and "ProcessingError: This page could not be read." in text
    assert "_raise_in_parser" in text
    short = traceback_text(error, 40)
    assert short is not None and len(short) == 40 and text.endswith(short)
    assert traceback_text(error, 0) is None
