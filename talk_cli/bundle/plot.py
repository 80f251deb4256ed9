"""A picture of a bundle: the synthetic graph, its adjacency heat map and the class balance."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from talk_cli.atomic import atomic_write_bytes  # noqa: E402
from talk_cli.bundle.bundle import Bundle  # noqa: E402


def layout(features: torch.Tensor) -> torch.Tensor:
    """2-D positions: the first two principal components of the synthetic features, so that
    nodes the LM sees as similar sit together."""
    centred = features.double() - features.double().mean(dim=0)
    if features.shape[0] < 2:
        return torch.zeros(features.shape[0], 2)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    coords = centred @ v[:2].T if v.shape[0] >= 2 else torch.cat([centred @ v[:1].T, torch.zeros(len(features), 1)], 1)
    return coords.float()


def plot_bundle(bundle: Bundle, path: Path) -> Path:
    n, classes = bundle.num_synthetic, bundle.dataset.label_names
    colours = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    fig, (ax_graph, ax_heat, ax_bar) = plt.subplots(1, 3, figsize=(16, 5), gridspec_kw={"width_ratios": [1.2, 1, 1]})

    pos = layout(bundle.features)
    adjacency = bundle.adjacency
    peak = float(adjacency.max()) if adjacency.numel() and adjacency.max() > 0 else 1.0
    for i, j in zip(*torch.triu_indices(n, n, offset=1)):
        weight = float(adjacency[i, j])
        if weight > 0:
            ax_graph.plot(*zip(pos[i].tolist(), pos[j].tolist()), color="grey", alpha=0.15 + 0.6 * weight / peak, lw=0.8)
    for cls in range(len(classes)):
        members = bundle.labels == cls
        if members.any():
            ax_graph.scatter(*pos[members].T.tolist(), color=colours(cls % colours.N), s=60, label=classes[cls], zorder=3)
    ax_graph.set_title(f"synthetic graph: {n} nodes (layout: PCA of features)")
    ax_graph.legend(fontsize=7, loc="best")
    ax_graph.set_xticks([])
    ax_graph.set_yticks([])

    order = torch.argsort(bundle.labels, stable=True)
    image = ax_heat.imshow(adjacency[order][:, order].numpy(), cmap="viridis")
    ax_heat.set_title("adjacency (nodes sorted by class)")
    fig.colorbar(image, ax=ax_heat, fraction=0.046)

    counts = torch.bincount(bundle.labels, minlength=len(classes)).tolist()
    ax_bar.bar(range(len(classes)), counts, color=[colours(c % colours.N) for c in range(len(classes))])
    ax_bar.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=7)
    ax_bar.set_title("synthetic nodes per class")
    fig.suptitle(f"{bundle.dataset.name} distilled by {bundle.distillation.method}")
    fig.tight_layout()

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
