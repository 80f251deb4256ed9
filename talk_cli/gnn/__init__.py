"""Training a node classifier on a graph and judging it on the real graph's validation nodes: what
`talk distill --select gcn` and `talk evaluate` both do, below both of them."""

from talk_cli.lazy import lazy_exports

EXPORTS = {
    "RECEPTIVE_HOPS": "talk_cli.gnn.models",
    "trainer": "talk_cli.gnn.train",
    "validated_training": "talk_cli.gnn.train",
}
__all__ = list(EXPORTS)
__getattr__ = lazy_exports(__name__, EXPORTS)
