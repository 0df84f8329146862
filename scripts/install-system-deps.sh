#!/bin/sh
# System packages the scorecards need (Debian/Ubuntu). Idempotent.
#
#   fonts-noto-cjk       Noto Sans CJK SC: the PDF scorecards embed a subset of it,
#                        so every Chinese glyph shows on paper and on phones
#   libharfbuzz-subset0  lets WeasyPrint subset that font in well under a second
#                        (without it: fontTools, 20-40 s per PDF)
#   poppler-utils        pdftotext / pdffonts / pdftoppm: the tests read the PDFs back
#   redis-server         the Celery broker of the native stack (`make stack`, the stack test)
#
# As root: installs only what is missing (at most one apt-get update).
# Not root: prints what to install; exits non-zero only when the fonts are
# missing (no PDF can be rendered without them).
set -eu

missing=""
fonts_missing=0

if ! fc-list :lang=zh family 2>/dev/null | grep -q "Noto Sans CJK SC"; then
    missing="$missing fonts-noto-cjk"
    fonts_missing=1
fi
if ! ldconfig -p 2>/dev/null | grep -q "libharfbuzz-subset\.so\.0"; then
    missing="$missing libharfbuzz-subset0"
fi
if ! command -v pdftotext >/dev/null 2>&1 || ! command -v pdffonts >/dev/null 2>&1 \
        || ! command -v pdftoppm >/dev/null 2>&1; then
    missing="$missing poppler-utils"
fi
if ! command -v redis-server >/dev/null 2>&1; then
    missing="$missing redis-server"
fi

if [ -z "$missing" ]; then
    echo "system dependencies present: fonts-noto-cjk libharfbuzz-subset0 poppler-utils redis-server"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "installing system dependencies:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086  # word splitting of the package list is intended
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fc-cache -f >/dev/null 2>&1 || true
    exit 0
fi

echo "system dependencies missing:$missing" >&2
echo "install them with:  sudo apt-get install -y --no-install-recommends$missing" >&2
echo "             or:    sudo $0" >&2
if [ "$fonts_missing" -eq 1 ]; then
    exit 1
fi
exit 0
