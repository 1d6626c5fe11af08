"""Backend comparison (in-process vs remote vLLM) from a checkout: `python bench/backends.py --help`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_llm.bench_backends import main

if __name__ == "__main__":
    main()
