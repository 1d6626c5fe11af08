"""Code that runs in the isolated worker venv (`worker_python`): quantize (llm-compressor), later train/merge.

Modules here import only the standard library and what the worker venv has (never vLLM or the server's
packages): the server starts them with `runner.run_worker`, which speaks the JSON-lines protocol of
`protocol` with them.
"""
