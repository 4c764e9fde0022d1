#!/usr/bin/env bash
# The Vulkan build of llama-cpp-python (kept for install.sh --vulkan and the docs):
# scripts/build-llama.sh PYTHON --vulkan, which says how it is built and cached.
exec bash "$(dirname "$0")/build-llama.sh" "${1:?usage: build-llama-vulkan.sh PYTHON}" --vulkan
