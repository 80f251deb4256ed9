"""Bundle errors: each names what is wrong. All are `TalkError`s (exit code 2 in the CLI)."""

from talk_cli.errors import TalkError


class BundleError(TalkError):
    """A bundle that cannot be read or does not conform to docs/bundle-format.md."""


class BundleNotFoundError(BundleError):
    pass


class BundleExistsError(BundleError):
    pass


class ManifestError(BundleError):
    pass


class UnsupportedVersionError(BundleError):
    pass


class UnsafePathError(BundleError):
    pass


class ChecksumError(BundleError):
    pass


class TensorError(BundleError):
    pass


class TextOverlapError(BundleError):
    """A bundle that would hold more real text than the user allowed (`--max-text-overlap`)."""
