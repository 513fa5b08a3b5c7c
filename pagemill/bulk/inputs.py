"""Which documents a bulk command works on, and where each one's results go.

Arguments are files, folders (walked recursively) and glob patterns (``"scans/**/*.pdf"``: quoted, so
that Pagemill expands them; unquoted, the shell already did). A file named on the command line is always
worked on (an unsupported one is reported with its error). Files found in a folder or by a pattern are kept
only when their content is a supported kind (PDF, images, office documents), as the server decides: the
results written beside them (``.md``, ``.txt``, ``.json``) and other files are ignored, whatever their
names. Hidden files and folders (``.name``) are skipped.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from pagemill.conversion.result import RESULT_SUFFIXES
from pagemill.documents.kinds import sniff_file
from pagemill.errors import PagemillError
from pagemill.jobs.options import OutputFormat

_GLOB_MAGIC = frozenset("*?[")


class InputProblem(Exception):
    """An argument names nothing: a path that does not exist, a pattern that matches no file."""


@dataclass(frozen=True, slots=True)
class InputFile:
    """A document to work on, and the folder its results go to under ``--out``, relative to it
    (a folder's tree is mirrored: ``scans/2024/a.pdf`` of ``scans/`` -> ``OUT/2024/a.md``)."""

    path: Path
    under_out: Path = Path()


@dataclass(slots=True)
class Inputs:
    """What the arguments found: documents in order, and files passed over (not a supported kind)."""

    files: list[InputFile] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def is_url(argument: str) -> bool:
    """True for an ``http://`` or ``https://`` argument (a document the server fetches)."""
    return argument.lower().startswith(("http://", "https://"))


def collect_files(arguments: list[str]) -> Inputs:
    """The documents named by ``arguments`` (files, folders, glob patterns), each once, in a stable order
    (arguments in order; a folder's files sorted). Raises InputProblem for an argument naming nothing."""
    found = Inputs()
    seen: set[Path] = set()

    def add(path: Path, under_out: Path, *, named: bool) -> None:
        key = path.resolve()
        if key in seen:
            return
        if not named and not _supported(path):
            found.ignored.append(path)
            return
        seen.add(key)
        found.files.append(InputFile(path, under_out))

    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            for file in _walk(path):
                add(file, file.parent.relative_to(path), named=False)
        elif path.is_file():
            add(path, Path(), named=True)
        elif _GLOB_MAGIC & set(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                raise InputProblem(f"no file matches {argument!r}")
            root = _pattern_root(argument)
            for match in map(Path, matches):
                # glob's wildcards skip hidden names, and so does the walk of a matched folder.
                for file in _walk(match) if match.is_dir() else [match] if match.is_file() else []:
                    add(file, _relative_folder(file, root), named=False)
        else:
            raise InputProblem(f"{argument!r} does not exist")
    return found


def output_stems(files: list[Path], out: Path | None) -> dict[Path, Path]:
    """Where each file's results go, without the format suffix: ``OUT/report`` for ``report.pdf``.

    Files whose stems meet in one folder (``a.png`` and ``a.jpg``) keep their whole name instead
    (``a.png``, ``a.jpg``: results ``a.png.md``, ``a.jpg.md``), so no file's results overwrite
    another's; a name met twice still (the same name from two folders) gets ``-2``, ``-3``.
    """
    return result_stems([InputFile(path) for path in files], out)


def result_stems(inputs: list[InputFile], out: Path | None) -> dict[Path, Path]:
    """:func:`output_stems` for found documents: under ``out`` in their mirrored folder, else beside them."""
    folders = {
        item.path: ((out / item.under_out) if out is not None else item.path.parent).resolve()
        for item in inputs
    }
    return stems_in_folders(folders)


def stems_in_folders(folders: dict[Path, Path]) -> dict[Path, Path]:
    """Result stems of documents (in order) going to the given folders; see :func:`output_stems`."""
    stems: dict[tuple[Path, str], int] = {}
    for path, folder in folders.items():
        stems[(folder, path.stem)] = stems.get((folder, path.stem), 0) + 1
    chosen: dict[Path, Path] = {}
    taken: set[Path] = set()
    for path, folder in folders.items():
        name = path.stem if stems[(folder, path.stem)] == 1 else path.name
        candidate, number = folder / name, 1
        while candidate in taken:
            number += 1
            candidate = folder / f"{name}-{number}"
        taken.add(candidate)
        chosen[path] = candidate
    return chosen


def result_paths(stem: Path, formats: list[OutputFormat]) -> list[Path]:
    """The files of ``formats`` for a result stem (``OUT/report`` -> ``OUT/report.md``, ...)."""
    return [stem.with_name(stem.name + RESULT_SUFFIXES[fmt]) for fmt in formats]


def results_exist(stem: Path, formats: list[OutputFormat]) -> bool:
    """True when every requested result file exists (they are written whole or not at all)."""
    return all(path.is_file() for path in result_paths(stem, formats))


def _walk(folder: Path) -> list[Path]:
    """Every non-hidden file under ``folder``, sorted, without following links to folders (no loops)."""
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files += [Path(root) / name for name in sorted(names) if not name.startswith(".")]
    return files


def _supported(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            sniff_file(f)
    except (OSError, PagemillError):
        return False
    return True


def _pattern_root(pattern: str) -> Path:
    """The folder before a pattern's first wildcard: ``scans/2024/*.pdf`` -> ``scans/2024``."""
    parts = Path(pattern).parts
    first_wild = next(index for index, part in enumerate(parts) if _GLOB_MAGIC & set(part))
    return Path(*parts[:first_wild])


def _relative_folder(file: Path, root: Path) -> Path:
    try:
        return file.parent.relative_to(root)
    except ValueError:
        return Path()
