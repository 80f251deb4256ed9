"""The benchmarks: scripts that measure talk_cli and write the tables in docs/. Run each from the
repository root as a module, `python -m benchmarks.NAME --help`; they call the library's public
surface (`talk_cli.pipeline`, and `talk_cli.research` for what the pipeline does not expose)."""
