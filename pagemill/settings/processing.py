"""Settings of reading documents: limits, OCR, engines and workers."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator

from pagemill.settings.time_limits import TimeLimitSettings


class LimitSettings(BaseModel):
    """Limits that keep hostile or oversized input from hurting the service."""

    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest accepted upload.")
    max_pages: int = Field(default=5000, ge=1, description="Most pages a document may have.")
    max_image_pixels: int = Field(
        default=200_000_000, ge=1, description="Most pixels an input image (or one TIFF frame) may have."
    )
    render_max_pixels: int = Field(
        default=40_000_000,
        ge=1_000_000,
        description="Pixel budget for one rendered PDF page; larger pages are rendered at a lower DPI.",
    )
    probe_timeout_s: int = Field(
        default=60,
        ge=1,
        description="Time allowed to open and inspect a document (and to render one page in a render "
        "process).",
    )
    probe_memory_mb: int = Field(
        default=1024,
        ge=64,
        description="Address-space cap for inspecting a document (and of a render process, beyond its "
        "start-up).",
    )
    max_archive_members: int = Field(
        default=10_000,
        ge=1,
        description="Most parts an office file's zip (DOCX, XLSX, ODT, EPUB...) may hold.",
    )
    max_archive_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1,
        description="Most bytes an office file's zip may unpack to, all parts together.",
    )
    max_compression_ratio: int = Field(
        default=200,
        ge=10,
        description="Highest compression ratio of one part of an office file's zip (parts over 1 MiB).",
    )
    max_sheet_cells: int = Field(
        default=2_000_000,
        ge=1,
        description="Most cells one sheet of a workbook may have (rows x columns of its used range), "
        "counted before the sheet is loaded.",
    )


class OcrSettings(BaseModel):
    """CPU OCR and the text-layer decision."""

    languages: str = Field(default="eng", description="Tesseract languages, e.g. 'eng+deu'.")
    dpi: int = Field(default=300, ge=72, le=600, description="Render resolution for OCR.")
    detect_orientation: bool = Field(
        default=True, description="Detect 90/180/270 degree rotation before OCR."
    )
    text_layer_min_chars: int = Field(
        default=16, ge=0, description="A page whose text layer has fewer usable characters goes to OCR."
    )
    timeout_s: int = Field(default=180, ge=1, description="Time allowed for OCR of one page.")


EngineName = Literal["tesseract", "rapidocr", "vllm", "remote-openai"]
"""Every engine that can read a page needing OCR."""


class OpenAiEngineSettings(BaseModel):
    """An OCR vision-language model behind an OpenAI-compatible chat completions API (vLLM or hosted)."""

    base_url: str | None = Field(
        default=None,
        description="Server root, e.g. http://vllm:8000 (the engine posts to /v1/chat/completions).",
    )
    model: str = Field(default="deepseek-ai/DeepSeek-OCR", description="Model name as the server serves it.")
    preset: Literal["deepseek-ocr", "olmocr", "dots-ocr", "nanonets-ocr", "generic"] = Field(
        default="generic", description="Prompt, image size, token budget and output clean-up for the model."
    )
    api_key: str | None = Field(default=None, description="Bearer token for the server, if it needs one.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Timeout for connecting to the server.")
    timeout_s: float = Field(default=300.0, gt=0, description="Timeout for one page's completion.")
    max_retries: int = Field(default=3, ge=0, description="Retries of transient failures (429, 503, drops).")
    retry_backoff_s: float = Field(default=1.0, gt=0, description="First retry delay; doubles, with jitter.")
    max_tokens: int | None = Field(
        default=None, ge=1, description="Output token cap (default: the preset's)."
    )
    temperature: float | None = Field(
        default=None, ge=0, description="Sampling temperature (default: preset's)."
    )
    image_max_side: int | None = Field(
        default=None, ge=64, description="Longest image side sent to the model, px (default: the preset's)."
    )
    requests_in_flight: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Pages a GPU worker keeps in flight (its thread pool size). Default: twice the server's "
            "max_num_seqs (the setting, or seen on its /metrics while it has requests waiting), else 64."
        ),
    )
    max_num_seqs: int | None = Field(
        default=None,
        ge=1,
        description="The server's --max-num-seqs (requests it runs at once), if known; sizes the default.",
    )


class RemoteOpenAiEngineSettings(OpenAiEngineSettings):
    """A hosted OpenAI-compatible endpoint. A subclass, not a default instance, so that setting one field
    (its base_url, say) keeps the other defaults: a group given in part is rebuilt from its class."""

    model: str = Field(default="gpt-4o-mini", description="Model name as the server serves it.")


class EngineSettings(BaseModel):
    """Which engine reads pages that need OCR, and what to fall back to."""

    default: EngineName = Field(
        default="tesseract",
        description="Engine for pages without a usable text layer: tesseract, rapidocr, vllm.",
    )
    fallback: list[EngineName] = Field(
        default_factory=list,
        description="Engines tried in order when the default fails, e.g. [remote-openai].",
    )
    max_fallback_attempts: int = Field(
        default=2, ge=0, description="How many fallback engines a page may try."
    )
    health_cache_s: float = Field(
        default=10.0, gt=0, description="How long a GPU server health check is trusted."
    )
    vllm: OpenAiEngineSettings = OpenAiEngineSettings()
    remote_openai: RemoteOpenAiEngineSettings = Field(
        default_factory=RemoteOpenAiEngineSettings,
        description="A hosted OpenAI-compatible endpoint, named `remote-openai` in the chain.",
    )


class WorkerSettings(BaseModel):
    """Celery worker behaviour."""

    concurrency: int | None = Field(default=None, ge=1, description="Worker processes. Default: CPU count.")
    nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU priority of the worker and everything it starts (Unix niceness, 0-19): on a host "
        "it shares with the API and the database (`pagemill up`, processes under one supervisor), answering "
        "requests comes before reading pages; on a host of its own it changes nothing. A worker leading its "
        "own session (as `pagemill up` starts it) sets its session's Linux autogroup to it too. In "
        "containers the CPU weight of the worker's container decides instead (`cpu_shares` in "
        "docker-compose.yml). 0: default priority.",
    )
    pages_per_task: int = Field(
        default=128,
        ge=1,
        description="Text-layer pages handled by one task (one claim); a big job's last pages are claimed in "
        "smaller shares, so the workers on it finish together.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Attempts before a page or job is given up.")
    lease_s: int = Field(
        default=900,
        ge=2,
        description="An active job with no progress for this long is re-enqueued by the sweeper (lost "
        "messages; a killed worker's pages come back sooner, after claim_ttl_s).",
    )
    max_requeues: int = Field(
        # 12 leases (3 h by default) with none of the job's pages taken: a job waiting behind a long backlog
        # must not be failed as stalled; a lost message was re-sent at the first lease.
        default=11,
        ge=0,
        description="Times the sweeper re-enqueues a job in a row with no page finished or taken by a "
        "worker in between; the next time it ends the job failed (JOB_STALLED).",
    )
    job_deadline_s: int = Field(
        default=86_400,
        ge=2,
        description="Longest a job may stay queued or running, from submission; the sweeper then ends it "
        "failed (PROCESSING_TIMEOUT).",
    )
    cancel_grace_s: int = Field(
        default=30,
        ge=0,
        description="A cancelled job that no worker has ended this long after its last progress is ended "
        "`cancelled` by the sweeper (its pages not yet read are skipped).",
    )
    claim_ttl_s: int = Field(
        default=30,
        ge=3,
        description="A worker's claim on the pages it reads lasts this long unless renewed (it renews every "
        "third of it while it works); the sweeper offers pages of a lapsed claim (a killed worker) again.",
    )
    claim_more_for_s: float = Field(
        default=1.0,
        ge=0,
        description="A page task that finished text-layer pages claims more on its queue for up to this "
        "long (fairly, like any claim) before it returns to the broker: short text-layer chunks then cost "
        "no broker round trip each. OCR pages return after each page. 0: one claim per task.",
    )
    max_deferrals: int = Field(
        default=5,
        ge=0,
        description="Times a page waits (with backoff up to 2 min) for its engines to come back before it "
        "fails with the engine's error.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Port a worker serves Prometheus metrics on (0: off)."
    )
    heartbeat_interval_s: float = Field(
        default=10.0,
        ge=0.5,
        le=300,
        description="How often a worker tells it is alive and which queues it consumes (a Redis hash "
        "with a distributed broker, a file in the data dir in embedded mode); it counts as gone after 3 "
        "intervals without one. The API's /metrics and GET /api/v1/health count workers per queue so.",
    )
    sweep_interval_s: int = Field(
        default=10,
        ge=1,
        description="How often a worker looks for lapsed page claims and stalled jobs.",
    )
    shutdown_timeout_s: int = Field(
        default=20,
        ge=1,
        description="On SIGTERM a worker finishes its running tasks for at most this long, then stops and "
        "leaves the rest to be redelivered. Keep below the platform's kill delay (Kubernetes: 30 s).",
    )
    task_soft_time_limit_s: int = Field(
        default=1500,
        ge=1,
        description="Soft time limit of one task (a backstop: above every hard limit of time_limits, which "
        "bound each page or chunk a task reads).",
    )
    task_time_limit_s: int = Field(
        default=1800, ge=1, description="Hard time limit of one task (above task_soft_time_limit_s)."
    )
    time_limits: TimeLimitSettings = Field(
        default_factory=TimeLimitSettings,
        description="Soft and hard time limits per kind of page work: image_page, document_page, "
        "text_chunk, audio_chunk.",
    )
    render_processes: int | None = Field(
        default=None,
        ge=0,
        description="Render processes of a worker that reads pages in threads (a GPU worker): pages for "
        "model engines are rendered and encoded there, off the worker's lock and GIL. Default: one per "
        "core; 0: render in the worker's threads.",
    )

    @model_validator(mode="after")
    def _task_limits_above_page_limits(self) -> Self:
        # One task reads one OCR page or a chunk of text-layer pages (and may claim more for
        # claim_more_for_s): Celery's limits must never cut a page short before its own limits do.
        longest = self.time_limits.longest_hard_s()
        if self.task_soft_time_limit_s <= longest + self.claim_more_for_s:
            raise ValueError(
                f"task_soft_time_limit_s ({self.task_soft_time_limit_s}) must be above the longest hard "
                f"limit of time_limits ({longest:g} s) plus claim_more_for_s"
            )
        if self.task_time_limit_s <= self.task_soft_time_limit_s:
            raise ValueError(
                f"task_time_limit_s ({self.task_time_limit_s}) must be above task_soft_time_limit_s "
                f"({self.task_soft_time_limit_s})"
            )
        return self
