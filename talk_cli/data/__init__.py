"""Stage 1: text-attributed graphs (TAGs) and their loaders."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "build_tag": "talk_cli.data.build",
    "JARGON": "talk_cli.data.demo",
    "TOPICS": "talk_cli.data.demo",
    "make_demo_tag": "talk_cli.data.demo",
    "load_tag_folder": "talk_cli.data.folder",
    "load_tag": "talk_cli.data.resolve",
    "resolve_data_root": "talk_cli.data.resolve",
    "SplitSpec": "talk_cli.data.split",
    "TAG": "talk_cli.data.tag",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
