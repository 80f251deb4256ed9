"""Training a node classifier on a graph and judging it on the real graph's validation nodes: what
`talk distill --select gcn` and `talk evaluate` both do, below both of them."""
