#!/usr/bin/env bash
# Ensure the Debian/Ubuntu packages Pagemill needs are present.
#
#   runtime (mandatory): tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd   (CPU OCR)
#   runtime (optional):  libreoffice-writer-nogui libreoffice-calc-nogui     (legacy DOC, XLS, PPT, RTF;
#                        libreoffice-impress-nogui                            without them: UNSUPPORTED_TYPE)
#   tests   (optional):  postgresql redis-server                              (throwaway test services)
#                        qpdf                                                 (building encrypted/broken PDFs)
#                        poppler-utils                                        (pdftotext: benchmark baseline)
#                        chromium                                             (the offline API docs, in a real browser)
#                        nodejs npm                                           (tus-js-client, in the tus upload tests)
#                        nats-server                                          (throwaway NATS for the event sink tests)
#                        kubernetes-client                                    (kubectl kustomize: the deploy/ tests)
#                        espeak-ng                                            (speech of known text: audio tests)
#
# Idempotent and fast when everything is installed: it only asks dpkg, and runs `apt-get update` (once)
# only when something is missing. Installs as root, or through `sudo -n` when that needs no password;
# otherwise prints the exact command to run. Exits non-zero only when a mandatory package is missing.
#
# Usage: scripts/install-system-deps.sh [--runtime-only] [--check]
#   --runtime-only  leave the test packages alone (production images)
#   --check         install nothing, only report (exit 1 if a mandatory package is missing)
set -euo pipefail

runtime_pkgs=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd)
office_pkgs=(libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui)
test_pkgs=(postgresql redis-server qpdf poppler-utils chromium nodejs npm nats-server kubernetes-client espeak-ng)

runtime_only=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --runtime-only) runtime_only=1 ;;
        --check) check_only=1 ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

log() { echo "install-system-deps: $*" >&2; }

# A package counts as present when dpkg says it is installed. Without dpkg (not Debian), fall back to the
# command it provides, so a hand-built Postgres in /usr/local/bin still counts.
pkg_present() {
    local pkg=$1
    if command -v dpkg-query >/dev/null 2>&1; then
        if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" == "install ok installed" ]]; then
            return 0
        fi
    fi
    case "$pkg" in
        tesseract-ocr) command -v tesseract >/dev/null 2>&1 ;;
        tesseract-ocr-eng | tesseract-ocr-osd)
            # Language data is a file, not a command; ask tesseract itself.
            local lang=${pkg#tesseract-ocr-}
            command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx "$lang"
            ;;
        postgresql)
            command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
            ;;
        redis-server) command -v redis-server >/dev/null 2>&1 ;;
        qpdf) command -v qpdf >/dev/null 2>&1 ;;
        poppler-utils) command -v pdftotext >/dev/null 2>&1 ;;
        chromium) command -v chromium >/dev/null 2>&1 ;;
        nodejs) command -v node >/dev/null 2>&1 ;;
        npm) command -v npm >/dev/null 2>&1 ;;
        nats-server) command -v nats-server >/dev/null 2>&1 || [[ -x /usr/sbin/nats-server ]] ;;
        # Any kubectl renders kustomize (a cloud SDK's counts): installing Debian's over it would clash.
        kubernetes-client) command -v kubectl >/dev/null 2>&1 ;;
        espeak-ng) command -v espeak-ng >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

missing_runtime=()
missing_test=()
for pkg in "${runtime_pkgs[@]}"; do
    pkg_present "$pkg" || missing_runtime+=("$pkg")
done
# Optional everywhere (the images too): their absence only refuses legacy office files, naming them.
for pkg in "${office_pkgs[@]}"; do
    pkg_present "$pkg" || missing_test+=("$pkg")
done
if [[ $runtime_only -eq 0 ]]; then
    for pkg in "${test_pkgs[@]}"; do
        pkg_present "$pkg" || missing_test+=("$pkg")
    done
fi
missing=("${missing_runtime[@]}" "${missing_test[@]}")

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all system packages present"
    exit 0
fi

# How to become root, if we can without asking anyone for a password.
sudo_cmd=()
can_install=0
if [[ $(id -u) -eq 0 ]]; then
    can_install=1
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
    can_install=1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    can_install=0
fi

if [[ $check_only -eq 1 || $can_install -eq 0 ]]; then
    log "missing packages: ${missing[*]}"
    log "install them with:"
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    if [[ ${#missing_runtime[@]} -gt 0 ]]; then
        log "mandatory (OCR) packages missing: ${missing_runtime[*]}"
        exit 1
    fi
    log "only optional (test, LibreOffice) packages are missing; continuing"
    exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Containers often have no package lists at all; one update is enough for the single install below.
"${sudo_cmd[@]}" apt-get update -qq
# Test services are started by the suite itself; a package's own service (postgresql's cluster) may or may
# not start depending on the machine, and the suite does not rely on it.
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    log "apt-get install failed"
    still_missing=()
    for pkg in "${missing_runtime[@]}"; do
        pkg_present "$pkg" || still_missing+=("$pkg")
    done
    if [[ ${#still_missing[@]} -gt 0 ]]; then
        log "mandatory packages still missing: ${still_missing[*]}"
        exit 1
    fi
    exit 0
fi
log "done"
