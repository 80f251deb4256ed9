"""Stage 1: text-attributed graphs (TAGs) and their loaders."""

from talk_cli.data.demo import make_demo_tag
from talk_cli.data.folder import load_tag_folder
from talk_cli.data.resolve import load_tag, resolve_data_root
from talk_cli.data.split import SplitSpec
from talk_cli.data.tag import TAG

__all__ = ["TAG", "SplitSpec", "load_tag", "load_tag_folder", "make_demo_tag", "resolve_data_root"]
