#!/usr/bin/env bash
# Installs the pinned moto (an S3-compatible server, from PyPI) for python3's user site: the S3
# storage tests (test/storage/s3-*.test.ts) start it. Quick when it is already there.
set -euo pipefail
MOTO_VERSION=5.2.5

if python3 -c "import sys, moto, moto.server; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "== moto $MOTO_VERSION already installed"
  exit 0
fi
echo "== installing moto[server]==$MOTO_VERSION (PyPI, user site)"
# --user keeps it out of the interpreter's own packages; on a distribution's python3 (PEP 668) that
# still needs PIP_BREAK_SYSTEM_PACKAGES, which then only ever touches ~/.local.
PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --user --disable-pip-version-check \
  --no-warn-script-location "moto[server]==$MOTO_VERSION"
python3 -c "import moto, moto.server; print('== moto', moto.__version__)"
