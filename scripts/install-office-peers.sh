#!/usr/bin/env bash
# docling's office backends (MsWordDocumentBackend, MsPowerpointDocumentBackend, MsExcelDocumentBackend) in
# their own venv, for the office quality benchmark (`python -m bench office_quality`), which runs them as a
# subprocess so Pagemill's .venv stays clean.
#
# No torch, no models: `docling` itself pulls docling-slim[standard] (torch, docling-ibm-models, rapidocr,
# Hugging Face hub...), but the office backends need only `docling-slim[format-office]`: docling-core,
# python-docx, python-pptx, openpyxl, pylatexenc, plus pandas, numpy and Pillow through docling-core
# (about 290 MB in the venv). The benchmark calls the backends directly (InputDocument + backend.convert(),
# what docling's SimplePipeline does for these formats): `docling.document_converter` imports the ASR
# pipeline and with it torch, so it cannot be imported here. Nothing loads model weights at run time.
#
# Idempotent: an existing venv with the pinned versions is left as it is.
# Usage: scripts/install-office-peers.sh [VENV]   (default .venv-peers; PYTHON=python3.11 to choose the base)
set -euo pipefail

venv=${1:-.venv-peers}
python=${PYTHON:-python3}
docling_slim=2.143.0
docling_core=2.104.0
log() { echo "install-office-peers: $*" >&2; }

if [[ ! -x "$venv/bin/python" ]]; then
    log "creating $venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
fi
if ! "$venv/bin/python" -m pip show -q docling-slim 2>/dev/null \
    || [[ $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("docling-slim"))') != "$docling_slim" ]]; then
    log "installing docling-slim[format-office]==$docling_slim, docling-core==$docling_core"
    "$venv/bin/python" -m pip install -q "docling-slim[format-office]==$docling_slim" "docling-core==$docling_core"
fi

# The backends import without torch, and no torch came along.
"$venv/bin/python" - <<'EOF'
import importlib.util
import sys

from docling.backend.msexcel_backend import MsExcelDocumentBackend  # noqa: F401
from docling.backend.mspowerpoint_backend import MsPowerpointDocumentBackend  # noqa: F401
from docling.backend.msword_backend import MsWordDocumentBackend  # noqa: F401

if importlib.util.find_spec("torch") is not None:
    sys.exit("install-office-peers: torch is installed in this venv; it must not be")
EOF
log "ready: $venv ($(du -sh "$venv" | cut -f1))"
