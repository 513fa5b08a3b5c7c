"""Recording dead letters where work fails for good, listing them, and replaying them. Never commits.

Recording happens in the transaction that makes the failure final (a page saved failed, a job ended failed),
so a failure that commits always has its dead letter and one that rolls back has none. Which errors are
dead letters, and their categories: pagemill.dead_letters.categories. One row per (job, category,
fingerprint): pages of a job failing the same way are added to it, and when a replayed one fails again the
same way it is open again (``failures`` counts).

A replay puts the work back: the dead letters' failed pages go back to pending with fresh attempts, the job
(failed, or succeeded with some pages failed) goes back to ``running`` with fresh attempts and no error, and
an ingest task is sent after commit; it re-plans a job whose document was never opened, or sends page tasks
for the pending pages. When a worker takes it up it writes ``job.started`` again (its attempt is the first
again), and its final event when it ends; the ``job.failed`` written before stays in the job's history.
Every replay is audited. It is refused (409) when the work cannot run again: REPLAY_SOURCE_GONE (the job was
purged or expired, its original deleted or missing, or the password it needs wiped when it ended) or
REPLAY_NOT_ALLOWED (replayed already, the job active again or cancelled, or cached copies read its pages).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from pagemill import queue
from pagemill.dead_letters import categories
from pagemill.dead_letters import repository as repo
from pagemill.dead_letters.repository import JobFacts
from pagemill.errors import NotFound, PagemillError, ReplayNotAllowed, ReplaySourceGone
from pagemill.jobs import repository as jobs_repo
from pagemill.metrics import DEAD_LETTERS_RECORDED
from pagemill.models import DeadLetter, DeadLetterCategory, DeadLetterState, JobState
from pagemill.models.base import utcnow
from pagemill.pagination import decode_cursor, encode_cursor
from pagemill.settings import Settings, get_settings
from pagemill.storage import BlobStore
from pagemill.tenancy import audit
from pagemill.tenancy.principal import Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskRef:
    """The task whose work failed: its name and arguments."""

    name: str
    args: list[Any] = field(default_factory=list)


# -- recording ---------------------------------------------------------------------------------------------


def job_facts(session: Session, job_id: str) -> JobFacts | None:
    """Lock the job and read what recording needs; call before ending the job (its password is wiped)."""
    return repo.lock_job(session, job_id)


def record_page_failures(
    session: Session, job_id: str, errors: Sequence[tuple[int, PagemillError]], *, finished_at: datetime
) -> list[DeadLetter]:
    """Record the dead letters among pages saved failed at ``finished_at`` (this transaction's time: a page
    another delivery finished first is left out); pages of one category and fingerprint go into one row,
    with the task that read them (``pagemill.read_pages`` on their queue). The rows written."""
    grouped: dict[tuple[DeadLetterCategory, str], list[tuple[int, PagemillError]]] = {}
    for index, error in errors:
        category = categories.category_of(error)
        if category is not None:
            grouped.setdefault((category, categories.fingerprint(error)), []).append((index, error))
    if not grouped:
        return []
    moved = repo.pages_finished_at(session, job_id, [index for index, _ in errors], finished_at)
    facts = repo.lock_job(session, job_id) if moved else None
    if facts is None:
        return []
    rows = []
    for (category, fingerprint), group in grouped.items():
        pages = [moved[index] for index, _ in group if index in moved]
        if pages:
            rows.append(
                _record(
                    session,
                    facts,
                    category,
                    fingerprint,
                    group[0][1],
                    pages=[page.index for page in pages],
                    attempts=max(page.attempts for page in pages),
                    task=TaskRef(queue.READ_PAGES, [pages[0].queue or queue.CPU_QUEUE]),
                )
            )
    return rows


def record_job_failure(
    session: Session,
    facts: JobFacts,
    error: PagemillError,
    *,
    task: TaskRef,
    attempts: int | None = None,
    pages: Sequence[int] = (),
) -> DeadLetter | None:
    """Record a job's failure (its document could not be opened, or the sweeper gave it up, failing its
    pending ``pages``) if it is a dead letter; ``facts`` as :func:`job_facts` read them before the end.
    ``attempts``: the work's, if not the job's own (its ingest attempts)."""
    category = categories.category_of(error)
    if category is None:
        return None
    fingerprint = categories.fingerprint(error)
    # The error's own count when it has one (WORKER_CRASHED at ingest: the attempts that crashed).
    spent = attempts if attempts is not None else int(error.details.get("attempts", facts.attempts))
    return _record(session, facts, category, fingerprint, error, pages=list(pages), attempts=spent, task=task)


def _record(
    session: Session,
    facts: JobFacts,
    category: DeadLetterCategory,
    fingerprint: str,
    error: PagemillError,
    *,
    pages: list[int],
    attempts: int,
    task: TaskRef,
) -> DeadLetter:
    settings = get_settings()
    now = utcnow()
    numbers = sorted({index + 1 for index in pages})
    trace = categories.traceback_text(error, settings.dead_letters.traceback_max_chars)
    row = repo.find(session, facts.id, category, fingerprint)
    if row is None:
        row = DeadLetter(
            id=str(uuid.uuid4()),
            job_id=facts.id,
            tenant_id=facts.tenant_id,
            category=category,
            state=DeadLetterState.OPEN,
            pages=numbers,
            task_name=task.name,
            task_args=list(task.args),
            error_code=error.code,
            error_message=error.message,
            error_details=_json_details(error),
            fingerprint=fingerprint,
            traceback=trace,
            attempts=attempts,
            failures=1,
            needs_password=facts.has_password,
            created_at=now,
            failed_at=now,
            replay_count=0,
        )
        repo.add(session, row)
        _count_after_commit(session, category)
    else:
        reopened = row.state != DeadLetterState.OPEN
        # Pages of a replayed row were all sent again: what fails now is the new list.
        row.pages = numbers if reopened else sorted({*row.pages, *numbers})
        row.state = DeadLetterState.OPEN
        row.failures += 1
        row.failed_at = now
        row.attempts = max(row.attempts, attempts) if not reopened else attempts
        row.error_message = error.message
        row.error_details = _json_details(error)
        row.traceback = trace or row.traceback
        row.needs_password = row.needs_password or facts.has_password
        row.task_name, row.task_args = task.name, list(task.args)
        if reopened:
            _count_after_commit(session, category)
    session.flush()
    log.warning(
        "dead letter %s: job %s, %s (%s), pages %s",
        row.id,
        facts.id,
        category,
        error.code,
        ",".join(map(str, numbers)) or "-",
    )
    return row


def _json_details(error: PagemillError) -> dict[str, Any] | None:
    # Details are JSON-ready by contract (they are the public error's); anything else is shown as text.
    details = {
        key: value if isinstance(value, str | int | float | bool | None) else str(value)
        for key, value in error.details.items()
    }
    return details or None


def _count_after_commit(session: Session, category: str) -> None:
    """Count a dead letter in pagemill_dead_letters_total once its transaction commits."""
    pending: list[str] = session.info.setdefault("pagemill_dead_letters", [])
    if not session.info.get("pagemill_dead_letters_listening"):
        event.listen(session, "after_commit", _count_pending)
        event.listen(session, "after_rollback", _drop_pending)
        session.info["pagemill_dead_letters_listening"] = True
    pending.append(category)


def _count_pending(session: Session) -> None:
    for category in session.info.pop("pagemill_dead_letters", []):
        DEAD_LETTERS_RECORDED.labels(category=category).inc()


def _drop_pending(session: Session) -> None:
    session.info.pop("pagemill_dead_letters", None)


# -- reading -----------------------------------------------------------------------------------------------


@dataclass
class _Position:
    """A dead letter's place in the listing, as a cursor names it."""

    id: str
    created_at: datetime


def list_dead_letters(
    session: Session, *, limit: int, cursor: str | None, **filters: Any
) -> tuple[list[DeadLetter], str | None]:
    """A page of dead letters, newest failure first, and the cursor of the next page; ``filters``: state,
    category, tenant_id, job_id, since, until."""
    after = decode_cursor(cursor) if cursor else None
    rows = list(repo.list_dead_letters(session, limit=limit + 1, after=after, **filters))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(_Position(last.id, last.failed_at))
    return rows[:limit], next_cursor


def get_dead_letter(session: Session, dead_letter_id: str) -> DeadLetter:
    """A dead letter by id; NotFound if there is none."""
    row = repo.get(session, dead_letter_id)
    if row is None:
        raise NotFound("No dead letter with this id.", dead_letter_id=dead_letter_id)
    return row


def open_counts(session: Session) -> dict[str, int]:
    """Open dead letters per category (every category, 0 when none), for the pagemill_dead_letters gauge."""
    counts = repo.open_counts(session)
    return {category.value: counts.get(category.value, 0) for category in DeadLetterCategory}


# -- replaying ---------------------------------------------------------------------------------------------


@dataclass
class BulkReplay:
    """What a bulk replay did: the dead letters replayed, those refused (id, error), and how many open ones
    of the category are left."""

    replayed: list[DeadLetter] = field(default_factory=list)
    skipped: list[tuple[str, PagemillError]] = field(default_factory=list)
    remaining: int = 0


def replay(session: Session, store: BlobStore, dead_letter_id: str, *, actor: Actor) -> DeadLetter:
    """Replay one dead letter (see the module): NotFound, or REPLAY_NOT_ALLOWED / REPLAY_SOURCE_GONE."""
    row = get_dead_letter(session, dead_letter_id)
    _replay_job(session, store, row.job_id, [row], actor=actor)
    session.refresh(row)
    return row


def replay_category(
    session: Session,
    store: BlobStore,
    *,
    category: DeadLetterCategory,
    actor: Actor,
    since: datetime | None = None,
    tenant_id: str | None = None,
    limit: int | None = None,
    settings: Settings | None = None,
) -> BulkReplay:
    """Replay the open dead letters of ``category`` (of one tenant, failed since a time), oldest first, at
    most ``limit`` (capped by dead_letters.bulk_replay_max); those that cannot be replayed are skipped with
    their error."""
    settings = settings or get_settings()
    cap = min(limit or settings.dead_letters.bulk_replay_max, settings.dead_letters.bulk_replay_max)
    rows = repo.open_dead_letters(session, category=category, tenant_id=tenant_id, since=since, limit=cap)
    by_job: dict[str, list[DeadLetter]] = {}
    for row in rows:
        by_job.setdefault(row.job_id, []).append(row)
    outcome = BulkReplay()
    for job_id, letters in by_job.items():
        try:
            _replay_job(session, store, job_id, letters, actor=actor)
        except (ReplayNotAllowed, ReplaySourceGone) as exc:
            outcome.skipped += [(row.id, exc) for row in letters]
            continue
        outcome.replayed += letters
    session.flush()
    for row in outcome.replayed:
        session.refresh(row)
    outcome.remaining = repo.count_open(session, category=category, tenant_id=tenant_id, since=since) - len(
        outcome.skipped
    )
    return outcome


def _replay_job(
    session: Session, store: BlobStore, job_id: str, letters: Sequence[DeadLetter], *, actor: Actor
) -> None:
    """Replay ``letters`` (all of job ``job_id``), or raise before changing anything."""
    facts = repo.lock_job(session, job_id)
    for row in letters:
        session.refresh(row)  # another replay may have committed while we waited for the lock
    if facts is None:
        raise ReplaySourceGone("The job no longer exists.", reason="job_gone", job_id=job_id)
    _check_replayable(session, store, facts, letters)
    now = utcnow()
    indices = sorted({number - 1 for row in letters for number in row.pages})
    reset = repo.reset_pages(session, job_id, indices)
    repo.reopen_job(session, job_id, now)
    jobs_repo.refresh_progress(session, job_id)
    queue.enqueue_after_commit(session, queue.INGEST_JOB, [job_id], priority=facts.priority)
    repo.mark_replayed(session, [row.id for row in letters], now=now, by=actor.subject)
    for row in letters:
        audit.record(
            session,
            actor,
            audit.DEAD_LETTER_REPLAYED,
            target=row.id,
            tenant_id=facts.tenant_id,
            details={"job_id": job_id, "category": row.category, "pages": list(row.pages)},
        )
    log.info(
        "replayed dead letter(s) %s of job %s: %d page(s) pending again, job running",
        ",".join(row.id for row in letters),
        job_id,
        reset,
    )


def _check_replayable(
    session: Session, store: BlobStore, facts: JobFacts, letters: Sequence[DeadLetter]
) -> None:
    """Raise REPLAY_NOT_ALLOWED or REPLAY_SOURCE_GONE if the letters' work cannot run again now."""
    done = [row.id for row in letters if row.state != DeadLetterState.OPEN]
    if done:
        raise ReplayNotAllowed(
            "The dead letter was replayed already; it opens again if its work fails again.",
            reason="replayed",
            dead_letter_ids=done,
        )
    state = JobState(facts.state)
    if facts.purged or state == JobState.EXPIRED or facts.source_deleted_at is not None:
        reason = "purged" if facts.purged else "expired" if state == JobState.EXPIRED else "source_deleted"
        raise ReplaySourceGone(
            "The job's original was deleted (retention or a purge); its work cannot run again.",
            reason=reason,
            job_id=facts.id,
        )
    if state in (JobState.QUEUED, JobState.RUNNING):
        raise ReplayNotAllowed(
            "The job is active; replay its dead letters once it has ended.",
            reason="job_active",
            state=state.value,
            job_id=facts.id,
        )
    if state == JobState.CANCELLED:
        raise ReplayNotAllowed(
            "The job was cancelled by its client; it is not run again.",
            reason="job_cancelled",
            state=state.value,
            job_id=facts.id,
        )
    if any(row.needs_password for row in letters) and not facts.has_password:
        raise ReplaySourceGone(
            "The document needs a password, which was wiped when the job ended; submit it again.",
            reason="password_wiped",
            job_id=facts.id,
        )
    if state == JobState.SUCCEEDED and repo.pages_shared(session, facts.id):
        raise ReplayNotAllowed(
            "Cached copies of this job read its pages; submit the document again instead.",
            reason="pages_shared",
            job_id=facts.id,
        )
    # A URL job whose document was never fetched fetches it again; any other needs its stored original.
    if facts.sha256 is not None and not store.exists(facts.source_key):
        raise ReplaySourceGone(
            "The job's original is missing from storage; its work cannot run again.",
            reason="source_missing",
            job_id=facts.id,
        )
