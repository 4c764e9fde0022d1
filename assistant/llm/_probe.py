"""``python -m assistant.llm._probe``: print the devices llama.cpp sees, as JSON (one line).

Run by :func:`assistant.llm.backend.probe` in a child process, so that a llama.cpp that
throws while initialising a backend cannot end the service.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from .backend import list_devices

if __name__ == "__main__":
    sys.stdout.write(json.dumps([asdict(d) for d in list_devices()]) + "\n")
