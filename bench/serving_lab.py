"""Serving-lab benchmarks (speculative decoding, prefix caching, tenants): `python bench/serving_lab.py --help`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp_llm.bench_serving_lab import main

if __name__ == "__main__":
    main()
