"""A chaos run: jobs submitted through two APIs while workers, Redis, Postgres and an API are killed.

:class:`ChaosRun` takes a :class:`~tests.support.chaos.ChaosStack`, computes the clean output of each
distinct document first, then submits ``plan.jobs`` jobs (each with its own Idempotency-Key, retried after
a 503 or a connection error, so a retry never makes a second job) and reads job statuses while the main
thread performs the chaos actions in a seeded random order, restarting what died as a supervisor would.
It then waits (bounded) for every accepted job to end and returns a :class:`ChaosResult`; its
``problems()`` are the suite's assertions and ``report()`` the printed and recorded summary
(:mod:`tests.support.chaos_report`). Actions run from the main thread: processes started from another
thread would get their parent-death signal when that thread ends.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import documents
from tests.support.chaos import ChaosStack, FailoverClient
from tests.support.chaos_watch import JobMonitor, Read

FINAL_STATES = {"succeeded", "failed", "cancelled"}
ACTIONS = ("pool_kill", "worker_kill", "gpu_worker_kill", "redis_restart", "postgres_stop", "api_kill")
KILLS = ("pool_kill", "worker_kill", "gpu_worker_kill")


@dataclass(frozen=True)
class Document:
    """One distinct document the run submits many times."""

    name: str
    data: bytes
    fields: dict[str, str]
    pages: int


def make_documents(folder: Path, *, gpu: bool = False) -> list[Document]:
    """Four born-digital PDFs (3-12 pages) and two scanned ones read with ``ocr_mode=ocr`` (2-3 pages,
    about a second of Tesseract per page, so kills land mid-page); with ``gpu`` a third scan read with
    ``engine=vllm``."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for n, pages in enumerate((3, 5, 8, 12), start=1):
        texts = [f"Chaos text document {n} page {p} keeps its words in order" for p in range(1, pages + 1)]
        path = documents.make_text_pdf(folder / f"text-{n}.pdf", texts)
        docs.append(Document(path.name, path.read_bytes(), {"formats": "text"}, pages))
    for n, pages in enumerate((2, 3), start=1):
        texts = [f"Scanned chaos {n} page {p}\nsurvives every kill" for p in range(1, pages + 1)]
        path = documents.make_scanned_pdf(folder / f"scan-{n}.pdf", texts)
        docs.append(Document(path.name, path.read_bytes(), {"formats": "text", "ocr_mode": "ocr"}, pages))
    if gpu:
        texts = [f"Model server chaos page {p}" for p in range(1, 5)]
        path = documents.make_scanned_pdf(folder / "gpu-scan.pdf", texts)
        fields = {"formats": "text", "ocr_mode": "ocr", "engine": "vllm"}
        docs.append(Document(path.name, path.read_bytes(), fields, len(texts)))
    return docs


@dataclass
class ChaosPlan:
    """What to do: how many jobs, which actions how often, how long things stay down."""

    seed: int = 20261129
    jobs: int = 80
    scanned_every: int = 5
    actions: dict[str, int] = field(
        default_factory=lambda: {
            "pool_kill": 3,
            "worker_kill": 2,
            "redis_restart": 1,
            "postgres_stop": 1,
            "api_kill": 1,
        }
    )
    submit_window_s: float = 60.0
    """Jobs are submitted evenly over this window, and the actions are started evenly over it (an action
    that overruns its slot delays the next one)."""
    postgres_down_s: float = 10.0
    redis_down_s: float = 1.0
    api_down_s: float = 2.0
    worker_restart_delay_s: float = 1.0
    aim_s: float = 5.0
    drain_timeout_s: float = 150.0


@dataclass
class Action:
    """One chaos action: when, on what, and what it interrupted (Unix times)."""

    kind: str
    at: float
    target: str
    back_at: float = 0.0
    killed_pids: set[int] = field(default_factory=set)
    in_flight: list[Read] = field(default_factory=list)
    done_before: dict[str, int] = field(default_factory=dict)


@dataclass
class Submission:
    """One logical submission (one Idempotency-Key) and how it went."""

    document: str
    key: str
    job_id: str | None = None
    tries: int = 0
    refused: str | None = None


@dataclass
class ChaosResult:
    """Everything the run saw; checked by ``chaos_report.problems`` and printed by ``chaos_report.report``."""

    plan: ChaosPlan
    started: float
    clean: dict[str, str]
    submissions: list[Submission]
    actions: list[Action]
    final_jobs: dict[str, dict[str, object]]
    outputs: dict[str, str | None]
    reads: list[Read]
    timelines: dict[str, list[tuple[float, str, int]]]
    answers: list[tuple[float, str, str, int | None, str | None]]
    api_down: dict[str, list[tuple[float, float]]]
    chaos_started: float
    chaos_ended: float
    finished: float
    violations: list[str]
    documents: dict[str, Document]
    engine_requests: int | None = None


class ChaosRun:
    """Run a plan against a stack (see the module docstring)."""

    def __init__(self, stack: ChaosStack, plan: ChaosPlan, docs: list[Document]) -> None:
        self.stack = stack
        self.plan = plan
        self.docs = {doc.name: doc for doc in docs}
        self.rng = random.Random(plan.seed)
        self.client = FailoverClient(stack.apis, stack.key)
        self.submissions: list[Submission] = []
        self.accepted: dict[str, str] = {}
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # Submitting and reading ---------------------------------------------------------------------------

    def submit(self, doc: Document) -> Submission:
        """Submit until 202 (same Idempotency-Key on every try), or record why it was refused."""
        entry = Submission(doc.name, uuid.uuid4().hex)
        with self._lock:
            self.submissions.append(entry)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            entry.tries += 1
            try:
                response = self.client.request(
                    "POST",
                    "/api/v1/documents",
                    route="submit",
                    files={"file": (doc.name, doc.data)},
                    data=doc.fields,
                    headers={"Idempotency-Key": entry.key},
                )
            except TimeoutError as exc:
                entry.refused = str(exc)
                continue
            if response.status_code == 202:
                entry.job_id = str(response.json()["id"])
                with self._lock:
                    self.accepted[entry.job_id] = doc.name
                return entry
            if response.status_code in (409, 503):  # busy or a dependency down: come back later
                time.sleep(min(float(response.headers.get("retry-after") or 1), 2.0))
                continue
            entry.refused = f"{response.status_code} {response.text[:300]}"
            self.violations.append(f"submission of {doc.name} answered {entry.refused}")
            return entry
        entry.refused = entry.refused or "no 202 within 120 s"
        return entry

    def get_job(self, job_id: str) -> dict[str, object] | None:
        """GET a job through either API, waiting out 503s; None (and a violation) if it is not found."""
        for _ in range(200):
            response = self.client.request("GET", f"/api/v1/jobs/{job_id}", route="job")
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
            if response.status_code == 503:
                time.sleep(0.5)
                continue
            self.violations.append(f"GET accepted job {job_id}: {response.status_code} {response.text[:200]}")
            return None
        return None

    def wait_final(self, job_id: str, timeout: float) -> dict[str, object] | None:
        """Poll a job until it is final (None after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get_job(job_id)
            if job is not None and job["state"] in FINAL_STATES:
                return job
            time.sleep(0.2)
        return None

    def result_text(self, job_id: str) -> str | None:
        """The job's text result (waiting out 503s)."""
        for _ in range(100):
            response = self.client.request(
                "GET", f"/api/v1/jobs/{job_id}/result", route="result", params={"format": "text"}
            )
            if response.status_code == 200:
                return response.text
            if response.status_code != 503:
                self.violations.append(f"result of {job_id}: {response.status_code} {response.text[:200]}")
                return None
            time.sleep(0.5)
        return None

    def clean_outputs(self) -> dict[str, str]:
        """Each distinct document once, on the same stack before any chaos: the expected texts."""
        jobs = {name: self.submit(doc).job_id for name, doc in self.docs.items()}
        clean: dict[str, str] = {}
        for name, job_id in jobs.items():
            assert job_id is not None, f"clean run of {name} was not accepted"
            job = self.wait_final(job_id, 180)
            assert job is not None and job["state"] == "succeeded", f"clean run of {name}: {job}"
            text = self.result_text(job_id)
            assert text is not None
            clean[name] = text
        return clean

    def _submitter(self) -> None:
        # An RNG of its own: the main thread's (action order, targets) must not depend on thread timing.
        rng = random.Random(self.plan.seed + 2)
        kinds: dict[str, list[str]] = {"text": [], "scan": [], "gpu": []}
        for name, doc in sorted(self.docs.items()):
            kind = "gpu" if "engine" in doc.fields else "scan" if "ocr_mode" in doc.fields else "text"
            kinds[kind].append(name)
        every = self.plan.scanned_every
        plan = []
        for n in range(self.plan.jobs):
            # One job in ``every`` a CPU scan, one a GPU scan (when the stack has a GPU worker), else text.
            kind = "scan" if n % every == 0 else "gpu" if n % every == every // 2 else "text"
            plan.append(rng.choice(kinds[kind] or kinds["text"]))
        interval = self.plan.submit_window_s / max(self.plan.jobs, 1)
        for name in plan:
            if self._stop.is_set():
                return
            started = time.monotonic()
            self.submit(self.docs[name])
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    def _reader(self) -> None:
        reader_rng = random.Random(self.plan.seed + 1)
        n = 0
        while not self._stop.wait(0.2):
            n += 1
            with self._lock:
                ids = list(self.accepted)
            try:
                if n % 10 == 0:
                    self.client.request("GET", "/api/v1/jobs", route="list", params={"limit": 20})
                elif ids:
                    job_id = reader_rng.choice(ids)
                    response = self.client.request("GET", f"/api/v1/jobs/{job_id}", route="job")
                    if response.status_code == 404:
                        self.violations.append(f"accepted job {job_id} answered 404")
            except TimeoutError as exc:  # both APIs unreachable for a minute: recorded, never a crash
                self.violations.append(f"status reads: {exc}")

    # Chaos actions ------------------------------------------------------------------------------------

    def _busy(self, pids: set[int]) -> set[int]:
        """Those of ``pids`` reading a page, waiting up to ``plan.aim_s`` for one to start (a kill that
        lands mid-page tests more than one between pages); empty if none did."""
        deadline = time.monotonic() + self.plan.aim_s
        while True:
            busy = {read.pid for read in self.stack.read_log.in_flight(pids)}
            if busy or time.monotonic() > deadline:
                return busy
            time.sleep(0.05)

    def act(self, kind: str, monitor: JobMonitor) -> Action:
        """Perform one action and bring back what it killed; the record of what it interrupted."""
        stack, plan = self.stack, self.plan
        action = Action(kind, time.time(), "")
        if kind == "pool_kill":
            pools = {pid for worker in stack.workers for pid in worker.pool_pids()}
            pid = self.rng.choice(sorted(self._busy(pools) or pools))
            action.target, action.killed_pids = f"pool pid {pid}", {pid}
            action.in_flight = stack.read_log.in_flight({pid})
            action.at = time.time()
            os.kill(pid, signal.SIGKILL)  # the worker's main process forks a replacement itself
        elif kind in ("worker_kill", "gpu_worker_kill"):
            slots = stack.workers if kind == "worker_kill" else [stack.gpu_worker] if stack.gpu_worker else []
            if not slots:
                raise ValueError("gpu_worker_kill needs a stack started with gpu=True")
            busy = self._busy({pid for slot in slots for pid in slot.all_pids()})
            worker = self.rng.choice([slot for slot in slots if slot.all_pids() & busy] or slots)
            action.target = worker.name
            action.in_flight = stack.read_log.in_flight(worker.all_pids())
            action.at = time.time()
            action.killed_pids = worker.kill9()
            time.sleep(plan.worker_restart_delay_s)
            worker.start()
        elif kind == "redis_restart":
            action.target, action.in_flight = "redis (restarted empty)", stack.read_log.in_flight()
            action.at = time.time()
            stack.redis.restart_empty(plan.redis_down_s)
        elif kind == "postgres_stop":
            action.target, action.in_flight = "postgres", stack.read_log.in_flight()
            action.at = time.time()
            stack.pg.stop()
            time.sleep(plan.postgres_down_s)
            stack.pg.start()
        elif kind == "api_kill":
            api = self.rng.choice(stack.apis)
            action.target = api.name
            action.at = time.time()
            api.kill9()
            time.sleep(plan.api_down_s)
            api.start()
        else:
            raise ValueError(f"unknown chaos action {kind}")
        action.back_at = time.time()
        for read in action.in_flight:
            point = monitor.latest(read.job_id)
            action.done_before[read.job_id] = point.done if point else 0
        return action

    # The run ------------------------------------------------------------------------------------------

    def run(self) -> ChaosResult:
        """Clean outputs, then submissions and chaos, then the drain; everything recorded."""
        started = time.time()
        clean = self.clean_outputs()
        chaos_started = time.time()
        order = [kind for kind, count in self.plan.actions.items() for _ in range(count)]
        self.rng.shuffle(order)
        actions: list[Action] = []
        threads = [
            threading.Thread(target=self._submitter, name="chaos-submitter", daemon=True),
            threading.Thread(target=self._reader, name="chaos-reader", daemon=True),
        ]
        with JobMonitor(self.stack.pg) as monitor:
            for thread in threads:
                thread.start()
            # The first action waits until pages are being read, so it has work to interrupt.
            deadline = time.monotonic() + 30
            while not self.stack.read_log.in_flight() and time.monotonic() < deadline:
                time.sleep(0.1)
            slot = self.plan.submit_window_s / max(len(order), 1)
            begun = time.monotonic()
            for n, kind in enumerate(order):
                time.sleep(max(0.0, begun + n * slot - time.monotonic()))
                actions.append(self.act(kind, monitor))
            chaos_ended = time.time()
            threads[0].join()
            finals = self._drain(self.plan.drain_timeout_s)
            self._stop.set()
            threads[1].join(10)
            finished = time.time()
            timelines = {
                job_id: [(p.at, p.state, p.done) for p in monitor.points(job_id)] for job_id in self.accepted
            }
        outputs = {
            job_id: self.result_text(job_id) if job.get("state") == "succeeded" else None
            for job_id, job in finals.items()
        }
        for api in self.stack.apis:
            self.violations += [f"{api.name} logged: {line}" for line in api.unhandled_errors()]
        return ChaosResult(
            plan=self.plan,
            started=started,
            clean=clean,
            submissions=list(self.submissions),
            actions=actions,
            final_jobs=finals,
            outputs=outputs,
            reads=self.stack.read_log.reads(),
            timelines=timelines,
            answers=[(a.at, a.target, a.route, a.status, a.retry_after) for a in self.client.answers],
            api_down={api.name: list(api.down_windows) for api in self.stack.apis},
            chaos_started=chaos_started,
            chaos_ended=chaos_ended,
            finished=finished,
            violations=list(self.violations),
            documents=self.docs,
            engine_requests=int(self.stack.sim.stats()["completed"]) if self.stack.sim else None,
        )

    def _drain(self, timeout: float) -> dict[str, dict[str, object]]:
        """Wait until every accepted job is final (through the API), at most ``timeout`` s in all."""
        deadline = time.monotonic() + timeout
        finals: dict[str, dict[str, object]] = {}
        for job_id in list(self.accepted):
            job = self.wait_final(job_id, max(1.0, deadline - time.monotonic()))
            if job is None:
                job = self.get_job(job_id) or {"state": "missing"}
            finals[job_id] = job
        return finals

    def close(self) -> None:
        """Close the client."""
        self.client.close()
