"""The sandbox LibreOffice converts legacy office files in (limits, environment, arguments, network, the
process group killed at the deadline, files refused before it runs), checked with a stand-in ``soffice``
shell script named by PAGEMILL_SOFFICE: none of these tests needs LibreOffice.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pagemill.documents.kinds import DocumentKind
from pagemill.documents.office import legacy
from pagemill.documents.office.document import ReadOptions
from pagemill.documents.office.legacy import convert_legacy
from pagemill.documents.office.readers import read_office
from pagemill.errors import CorruptFile, ProcessingTimeout, UnsupportedType
from pagemill.settings import LimitSettings

pytestmark = pytest.mark.integration

LIMITS = LimitSettings()


@pytest.fixture
def fake_soffice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSoffice]:
    yield FakeSoffice(tmp_path / "bin", monkeypatch)


class FakeSoffice:
    """Writes a shell script standing in for soffice and points PAGEMILL_SOFFICE at it."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.monkeypatch = monkeypatch

    def install(self, body: str) -> Path:
        self.folder.mkdir(exist_ok=True)
        script = self.folder / "soffice"
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
        self.monkeypatch.setenv(legacy.SOFFICE_ENV, str(script))
        return script


# Records its limits, environment, network interfaces and arguments in $HOME, then writes the output.
RECORDING_SOFFICE = """
for arg; do
    [ "$previous" = --outdir ] && outdir=$arg
    previous=$arg
done
{ echo "as_kib=$(ulimit -v)"; echo "cpu_s=$(ulimit -t)"; echo "core=$(ulimit -c)"; } > "$HOME/limits.txt"
env > "$HOME/env.txt"
cat /proc/self/net/dev > "$HOME/net.txt"
printf '%s\\n' "$@" > "$HOME/args.txt"
mkdir -p "$outdir" && printf 'PK' > "$outdir/input.docx"
"""


def test_sandbox_environment_arguments_and_limits(
    fake_soffice: FakeSoffice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_soffice.install(RECORDING_SOFFICE)
    monkeypatch.setenv("PAGEMILL_TEST_CANARY", "must-not-leak")
    upload = tmp_path / "quarterly $(reboot); report.rtf"
    shutil.copyfile(make_rtf(tmp_path), upload)
    work = tmp_path / "work"
    work.mkdir()
    limits = LimitSettings(probe_timeout_s=7, probe_memory_mb=512)

    converted = convert_legacy(upload, DocumentKind.RTF, work, limits)

    work = work.resolve()
    assert converted == work / "out" / "input.docx"
    args = (work / "args.txt").read_text().splitlines()
    assert args == [
        "--headless",
        "--norestore",
        "--nologo",
        "--nodefault",
        "--nolockcheck",
        f"-env:UserInstallation={(work / 'profile').as_uri()}",
        "--convert-to",
        "docx:MS Word 2007 XML",
        "--outdir",
        str(work / "out"),
        str(work / "input.rtf"),  # a neutral name: the upload's name never reaches the command line
    ]
    env = dict(line.split("=", 1) for line in (work / "env.txt").read_text().splitlines() if "=" in line)
    assert env["HOME"] == str(work)
    assert env["TMPDIR"] == str(work / "tmp")
    assert set(env) <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD", "SHLVL", "_", "OLDPWD"}
    limits_seen = dict(line.split("=") for line in (work / "limits.txt").read_text().split())
    # max(probe_memory_mb, what LibreOffice needs), never above a hard limit this process already has.
    expected_as = 2048 * 1024 * 1024
    hard_as = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard_as != resource.RLIM_INFINITY:
        expected_as = min(expected_as, hard_as)
    assert int(limits_seen["as_kib"]) == expected_as // 1024
    assert limits_seen["cpu_s"] == "7"
    assert limits_seen["core"] == "0"
    if legacy._network_prefix():
        interfaces = [line.split(":")[0].strip() for line in (work / "net.txt").read_text().splitlines()[2:]]
        assert interfaces == ["lo"]


def test_timeout_kills_the_whole_process_group(fake_soffice: FakeSoffice, tmp_path: Path) -> None:
    fake_soffice.install(
        # The script and a child of its own (as oosplash starts soffice.bin) both outlive the deadline.
        'awk \'{print $5}\' /proc/$$/stat > "$HOME/pgid"\nsleep 60 &\necho $! > "$HOME/child"\nwait\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    limits = LimitSettings(probe_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ProcessingTimeout) as caught:
        convert_legacy(make_rtf(tmp_path), DocumentKind.RTF, work, limits)
    assert time.monotonic() - started < 4
    assert caught.value.code == "PROCESSING_TIMEOUT"
    pgid = int((work / "pgid").read_text())
    assert pgid != os.getpgid(0)
    # Killed processes are reaped by whoever adopted them: give that a moment, then nothing may be alive.
    deadline = time.monotonic() + 3
    while live_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_members(pgid) == []


def live_members(pgid: int) -> list[int]:
    """Pids of the processes of group ``pgid`` that are not zombies."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def test_garbage_with_a_doc_kind_is_corrupt_before_libreoffice_runs(
    fake_soffice: FakeSoffice, tmp_path: Path
) -> None:
    """LibreOffice would import random bytes named .doc as plain text: the container is checked first."""
    fake_soffice.install('touch "$HOME/ran"\n')
    garbage = tmp_path / "garbage.doc"
    garbage.write_bytes(os.urandom(4096))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(CorruptFile) as caught:
        convert_legacy(garbage, DocumentKind.DOC, work, LIMITS)
    assert caught.value.code == "CORRUPT_FILE"
    assert not (work / "ran").exists()


def test_not_rtf_is_corrupt(fake_soffice: FakeSoffice, tmp_path: Path) -> None:
    fake_soffice.install('touch "$HOME/ran"\n')
    source = tmp_path / "upload"
    source.write_bytes(b"not rtf at all")
    (tmp_path / "work").mkdir()
    with pytest.raises(CorruptFile):
        convert_legacy(source, DocumentKind.RTF, tmp_path / "work", LIMITS)
    assert not (tmp_path / "work" / "ran").exists()


def test_no_output_is_corrupt(fake_soffice: FakeSoffice, tmp_path: Path) -> None:
    """LibreOffice exits 0 when it cannot load a file: the missing output is the failure."""
    fake_soffice.install('echo "Error: source file could not be loaded"\nexit 0\n')
    (tmp_path / "work").mkdir()
    with pytest.raises(CorruptFile) as caught:
        convert_legacy(make_rtf(tmp_path), DocumentKind.RTF, tmp_path / "work", LIMITS)
    assert caught.value.details == {"reason": "conversion"}


@pytest.mark.parametrize("kind", [DocumentKind.DOC, DocumentKind.XLS, DocumentKind.PPT, DocumentKind.RTF])
def test_missing_libreoffice_is_unsupported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: DocumentKind
) -> None:
    monkeypatch.setenv(legacy.SOFFICE_ENV, "/nonexistent")
    upload = tmp_path / "upload"
    upload.write_bytes(b"{\\rtf1 hello}")
    with pytest.raises(UnsupportedType) as caught:
        read_office(upload, kind, ReadOptions(), LIMITS)
    error = caught.value
    assert error.code == "UNSUPPORTED_TYPE"
    assert error.details == {"detected": kind.value, "needs": "libreoffice"}
    for package in ("libreoffice-writer-nogui", "libreoffice-calc-nogui", "libreoffice-impress-nogui"):
        assert package in error.message


def make_rtf(folder: Path) -> Path:
    """A small RTF file: it passes the container check, and a stand-in soffice needs nothing more."""
    path = folder / "minimal.rtf"
    path.write_bytes(b"{\\rtf1\\ansi Hello}")
    return path
