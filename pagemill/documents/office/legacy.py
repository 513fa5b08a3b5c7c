"""Legacy binary office files (DOC, XLS, PPT, RTF) converted by LibreOffice into DOCX, XLSX or PPTX.

LibreOffice's importers are a large body of C++ fed hostile bytes, so every conversion runs in a sandbox
of its own:

* a folder of its own (the caller's, fresh per call): a new LibreOffice profile (two conversions never share
  one; a shared profile is also locked by the first), the input copied under a neutral name whose extension
  picks the import filter (the client's file name never reaches a command line), the output, TMPDIR;
* a hardened profile: macros off, links never updated, so a document cannot pull a local file or a URL into
  its converted text;
* no network: a new network namespace (``unshare -n`` as root, ``unshare -rn`` through a user namespace)
  where the kernel permits one. Where neither is permitted (a container without CAP_SYS_ADMIN and with user
  namespaces off), network isolation relies on the deployment: a Kubernetes NetworkPolicy denying the
  workers' egress;
* an environment of PATH, HOME (the folder), LANG and TMPDIR only; stdin /dev/null; output kept to 64 KiB;
* resource limits set before LibreOffice starts (``prlimit``): address space, CPU seconds, file size, no
  core dumps;
* ``limits.probe_timeout_s`` of wall-clock time, after which its whole process group is killed. ``timeout``
  (coreutils) enforces the same deadline a few seconds later from inside the group, for when this process
  is killed first and cannot.

Failures reach the client as CorruptFile (or EncryptedFile, ProcessingTimeout) with client-safe messages;
what LibreOffice printed goes to the log only.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import resource
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office.legacy_container import check_container, is_encrypted
from pagemill.errors import CorruptFile, EncryptedFile, ProcessingTimeout, TransientError, UnsupportedType
from pagemill.settings import LimitSettings

logger = logging.getLogger(__name__)

SOFFICE_ENV: Final = "PAGEMILL_SOFFICE"
"""Names another LibreOffice binary (tests use a stand-in). Not a setting: operators install soffice."""

_MB: Final = 1024 * 1024
# LibreOffice 7.4 measured on Debian: soffice.bin peaks at 454-474 MB of address space converting a one-page
# DOC, XLS, PPT or RTF (about 210 MB resident), 632 MB for a 300-page, 39 MB DOC with pictures, and aborts
# below about 500 MB. The cap is max(probe_memory_mb, this), per process: room for large documents, still a
# bound on a runaway importer.
_SOFFICE_MIN_ADDRESS_SPACE_MB: Final = 2048
# `timeout` kills the group this long after the deadline this process enforces itself.
_BACKSTOP_GRACE_S: Final = 5
_OUTPUT_KEPT_BYTES: Final = 64 * 1024
_POLL_S: Final = 0.05
_ENV_PATH: Final = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class _Target:
    """What a legacy kind becomes: the input's extension (LibreOffice picks its import filter by it), and
    the output's extension and export filter (the Microsoft variants, which the OOXML readers expect)."""

    source_ext: str
    target_ext: str
    export_filter: str
    app: str


_TARGETS: Final[dict[DocumentKind, _Target]] = {
    DocumentKind.DOC: _Target("doc", "docx", "MS Word 2007 XML", "Word 97-2003"),
    DocumentKind.RTF: _Target("rtf", "docx", "MS Word 2007 XML", "RTF"),
    DocumentKind.XLS: _Target("xls", "xlsx", "Calc MS Excel 2007 XML", "Excel 97-2003"),
    DocumentKind.PPT: _Target("ppt", "pptx", "Impress MS PowerPoint 2007 XML", "PowerPoint 97-2003"),
}

# The new profile's settings (user/registrymodifications.xcu): no macros at all, external links never
# updated (Writer: 0 = never; Calc: 1 = never), no pictures from untrusted referers.
_PROFILE_SETTINGS: Final = (
    ("org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel", "3"),
    ("org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution", "true"),
    ("org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks", "true"),
    ("org.openoffice.Office.Writer/Content/Update", "Link", "0"),
    ("org.openoffice.Office.Calc/Content/Update", "Link", "1"),
)


@dataclass(frozen=True, slots=True)
class _Outcome:
    status: int
    """Wait status of the process started (a shell script, prlimit, ...); LibreOffice exits 0 on failure."""
    timed_out: bool
    cpu_s: float
    output: bytes


def convert_legacy(path: Path, kind: DocumentKind, folder: Path, limits: LimitSettings) -> Path:
    """Convert the legacy file at ``path`` (DOC, XLS, PPT or RTF) into a DOCX, XLSX or PPTX in ``folder``
    (an empty folder of this call's own) and return the converted file's path.

    Raises UnsupportedType when LibreOffice is not installed, CorruptFile when the file is not the container
    its kind says or LibreOffice cannot convert it, EncryptedFile for a password-protected file (which
    LibreOffice cannot open headless) and ProcessingTimeout past ``limits.probe_timeout_s``.
    """
    target = _TARGETS.get(kind)
    if target is None:
        raise UnsupportedType(detected=kind.value)
    soffice = _soffice(kind)
    check_container(path, kind)
    folder = folder.resolve()
    profile, out, tmp = folder / "profile", folder / "out", folder / "tmp"
    # exist_ok=False: a folder reused by two conversions would share a profile.
    for directory in (profile / "user", out, tmp):
        directory.mkdir(parents=True, exist_ok=False)
    (profile / "user" / "registrymodifications.xcu").write_text(_profile_settings(), encoding="utf-8")
    source = folder / f"input.{target.source_ext}"
    shutil.copyfile(path, source)
    command = [
        *_backstop_prefix(limits),
        *_network_prefix(),
        soffice,
        "--headless",
        "--norestore",
        "--nologo",
        "--nodefault",
        "--nolockcheck",
        f"-env:UserInstallation={profile.as_uri()}",
        "--convert-to",
        f"{target.target_ext}:{target.export_filter}",
        "--outdir",
        str(out),
        str(source),
    ]
    env = {"PATH": _ENV_PATH, "HOME": str(folder), "LANG": "C.UTF-8", "TMPDIR": str(tmp)}
    started = time.monotonic()
    outcome = _run(command, env, folder, limits)
    elapsed = time.monotonic() - started
    converted = out / f"input.{target.target_ext}"
    if outcome.timed_out or outcome.cpu_s >= limits.probe_timeout_s:
        logger.warning("LibreOffice took longer than %s s converting a %s file", limits.probe_timeout_s, kind)
        raise ProcessingTimeout(
            f"Converting the {target.app} file took longer than allowed ({limits.probe_timeout_s} s).",
            kind="conversion",
            timeout_s=limits.probe_timeout_s,
        )
    if converted.is_file() and not converted.is_symlink() and converted.stat().st_size > 0:
        logger.debug("LibreOffice converted a %s file in %.2f s", kind, elapsed)
        return converted
    # LibreOffice exits 0 when it cannot load the file: the missing output is what tells.
    logger.info(
        "LibreOffice did not convert a %s file (wait status %s, %.2f s): %s",
        kind,
        outcome.status,
        elapsed,
        outcome.output[-2000:].decode("utf-8", "replace").strip(),
    )
    if is_encrypted(source, kind):
        raise EncryptedFile(
            f"The {target.app} file is password-protected; password-protected legacy files are not "
            "supported: save it without a password (or in the current Office format) and send it again.",
            reason="legacy_encrypted",
        )
    raise CorruptFile(f"The {target.app} file is damaged and cannot be converted.", reason="conversion")


def _profile_settings() -> str:
    """The profile's registrymodifications.xcu."""
    items = "".join(
        f'<item oor:path="/{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>\n"
        for path, name, value in _PROFILE_SETTINGS
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
        'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        f"{items}</oor:items>\n"
    )


def _soffice(kind: DocumentKind) -> str:
    """The LibreOffice binary's path: ``PAGEMILL_SOFFICE`` when set, else ``soffice`` on PATH."""
    configured = os.environ.get(SOFFICE_ENV)
    found = shutil.which(configured) if configured else shutil.which("soffice")
    if found is None:
        raise UnsupportedType(
            f"{kind.value.upper()} files need LibreOffice: install the Debian packages "
            "libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui "
            "(make system-deps does).",
            detected=kind.value,
            needs="libreoffice",
        )
    return str(Path(found).absolute())


def _run(command: list[str], env: dict[str, str], folder: Path, limits: LimitSettings) -> _Outcome:
    """Run ``command`` in a new session under the limits until it exits or the deadline passes; its whole
    process group is killed either way (nothing LibreOffice started outlives the call)."""
    deadline = time.monotonic() + limits.probe_timeout_s
    prlimit = _prlimit_prefix(limits)
    try:
        process = subprocess.Popen(
            [*prlimit, *command] if prlimit is not None else command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
            # Only where prlimit is missing: preexec_fn is not safe in a process with threads.
            preexec_fn=None if prlimit is not None else functools.partial(_apply_limits, limits),
        )
    except OSError:
        # Out of processes or memory on this worker: not the document's fault, worth retrying.
        raise TransientError("The document could not be converted right now.") from None
    assert process.stdout is not None
    kept = bytearray()
    timed_out = False
    try:
        stream: int | None = process.stdout.fileno()
        while not _exited(process.pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select(
                [stream] if stream is not None else [], [], [], min(remaining, _POLL_S)
            )
            if ready and stream is not None:
                chunk = os.read(stream, 65536)
                if not chunk:
                    stream = None  # EOF: keep waiting for the exit
                elif len(kept) < _OUTPUT_KEPT_BYTES:
                    kept += chunk[: _OUTPUT_KEPT_BYTES - len(kept)]
    finally:
        # Before reaping: the unreaped leader keeps its group id from being reused by another process.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        status, cpu_s = _reap(process.pid)
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
    return _Outcome(status, timed_out, cpu_s, bytes(kept))


def _reap(pid: int) -> tuple[int, float]:
    """Reap the process: its wait status and the CPU seconds it and its reaped descendants used."""
    try:
        _, status, usage = os.wait4(pid, 0)
    except ChildProcessError:  # reaped by someone else (a SIGCHLD handler): nothing more to learn
        return 0, 0.0
    return status, usage.ru_utime + usage.ru_stime


def _exited(pid: int) -> bool:
    """True once the process has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _limit_values(limits: LimitSettings) -> dict[int, tuple[int, int]]:
    """(soft, hard) of each limit LibreOffice runs under, never above a hard limit this process already has
    (the probe's child caps its own address space; raising a hard limit would fail)."""
    wanted = {
        resource.RLIMIT_AS: (max(limits.probe_memory_mb, _SOFFICE_MIN_ADDRESS_SPACE_MB) * _MB, 0),
        # SIGXCPU at the soft limit, SIGKILL a second later: an importer spinning in C cannot outlive it.
        resource.RLIMIT_CPU: (limits.probe_timeout_s, 1),
        # A converted file over max_archive_bytes would be refused by the reader anyway.
        resource.RLIMIT_FSIZE: (limits.max_archive_bytes, 0),
        resource.RLIMIT_CORE: (0, 0),
    }
    values = {}
    for which, (soft, extra) in wanted.items():
        _, hard_now = resource.getrlimit(which)
        hard = soft + extra
        if hard_now != resource.RLIM_INFINITY:
            soft, hard = min(soft, hard_now), min(hard, hard_now)
        values[which] = (soft, hard)
    return values


_PRLIMIT_OPTIONS: Final = {
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_CORE: "--core",
}


def _prlimit_prefix(limits: LimitSettings) -> list[str] | None:
    """``prlimit`` (util-linux) setting the limits and running the command; None where it is missing."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return None
    options = [
        f"{_PRLIMIT_OPTIONS[which]}={soft}:{hard}" for which, (soft, hard) in _limit_values(limits).items()
    ]
    return [prlimit, *options, "--"]


def _apply_limits(limits: LimitSettings) -> None:  # pragma: no cover - runs in the child, without prlimit
    for which, values in _limit_values(limits).items():
        resource.setrlimit(which, values)


def _backstop_prefix(limits: LimitSettings) -> list[str]:
    """``timeout`` (coreutils), which SIGKILLs the whole group a little after the deadline even when this
    process was killed first (the probe's child can be); empty where it is missing."""
    timeout = shutil.which("timeout")
    if timeout is None:
        return []
    return [timeout, "--signal=KILL", str(limits.probe_timeout_s + _BACKSTOP_GRACE_S)]


@functools.cache
def _network_prefix() -> tuple[str, ...]:
    """``unshare`` with the flags that give a network namespace here (tried once per process), or nothing."""
    unshare = shutil.which("unshare")
    if unshare is not None:
        # -n needs CAP_SYS_ADMIN (root); -rn works unprivileged where user namespaces are allowed.
        for flags in ("-n", "-rn"):
            try:
                trial = subprocess.run(
                    [unshare, flags, "true"],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={"PATH": _ENV_PATH},
                    timeout=10,
                    check=False,
                )
            except (OSError, subprocess.SubprocessError):
                continue
            if trial.returncode == 0:
                return (unshare, flags)
    logger.warning(
        "LibreOffice runs without a network namespace of its own (unshare is missing or not permitted): "
        "network isolation relies on the deployment (a NetworkPolicy denying the workers' egress)"
    )
    return ()
