#!/usr/bin/env bash
# Install what the browser tests (tests/browser/, marker `browser`) need on a fresh Debian machine:
# Debian's Chromium (driven by Playwright through executable_path=/usr/bin/chromium), fonts for
# readable screenshots, and JupyterLab + Playwright from PyPI. Never `playwright install`: the
# browser download cannot work on these machines, and the system Chromium is used instead.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    chromium fonts-dejavu-core fonts-liberation

python3 -m pip install -q jupyterlab playwright 'ipywidgets>=8' nbformat

/usr/bin/chromium --version
python3 -c "import jupyterlab, playwright; print('jupyterlab', jupyterlab.__version__)"
