"""A picture of a bundle: where the synthetic nodes sit among the real ones, the distillation
curve, the synthetic structure (only when it has edges) and the class balance."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from talk_cli.atomic import atomic_write_bytes  # noqa: E402
from talk_cli.bundle.bundle import Bundle  # noqa: E402
from talk_cli.bundle.describe import learned_structure  # noqa: E402

MAX_REAL_POINTS = 5000  # more only blurs the picture; a seeded sample keeps it reproducible
MAX_LEGEND_CLASSES = 20  # beyond this the legend would cover the figure; the bar chart names the colours


def principal_axes(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and first two principal directions ([2, h]; fewer rows are zero-padded)."""
    points = points.double()
    mean = points.mean(dim=0)
    _, _, v = torch.linalg.svd(points - mean, full_matrices=False)
    axes = torch.zeros(2, points.shape[1], dtype=torch.float64)
    axes[: min(2, v.shape[0])] = v[:2]
    return mean, axes


def project(points: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    return ((points.double() - mean) @ axes.T).float()


def draw_projection(ax, bundle: Bundle, colour, real=None) -> None:
    """Real nodes (a sample, faint, by class) and the synthetic ones on top, in the real nodes'
    first two principal components; without the real graph, the synthetic features' own."""
    if real is not None:
        keep = torch.randperm(real.num_nodes, generator=torch.Generator().manual_seed(0))[:MAX_REAL_POINTS]
        mean, axes = principal_axes(real.x[keep])
        where = project(real.x[keep], mean, axes)
        ax.scatter(*where.T.tolist(), c=[colour(int(c)) for c in real.y[keep]], s=4, alpha=0.25, linewidths=0)
        title = f"synthetic nodes (large) among {len(keep)} real nodes: PCA of the real features"
    else:
        mean, axes = principal_axes(bundle.features)
        title = "synthetic nodes: PCA of their features (real nodes not drawn)"
    synthetic = project(bundle.features, mean, axes)
    for cls, name in enumerate(bundle.dataset.label_names):
        members = bundle.labels == cls
        if members.any():
            ax.scatter(*synthetic[members].T.tolist(), color=colour(cls), s=70, edgecolors="black", linewidths=0.8, label=name, zorder=3)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_curve(ax, bundle: Bundle) -> None:
    curve = bundle.distillation.curve
    if not curve:
        why = "a coreset is picked, not learned" if learned_structure(bundle) is None else "no curve recorded (bundle format 1.0)"
        ax.text(0.5, 0.5, f"no distillation curve:\n{why}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    steps = [point["step"] for point in curve]
    ax.plot(steps, [float("nan") if point["loss"] is None else point["loss"] for point in curve], color="tab:red", marker=".")
    ax.set_xlabel("outer step")
    ax.set_ylabel("training KRR loss (mean since previous point)", color="tab:red", fontsize=8)
    accuracy = ax.twinx()
    accuracy.plot(steps, [point["val_accuracy"] for point in curve], color="tab:blue", marker=".")
    scorer = bundle.distillation.settings.get("select", "krr").upper()  # bundles before `select` were scored by KRR
    accuracy.set_ylabel(f"validation {scorer} accuracy", color="tab:blue", fontsize=8)
    best = bundle.distillation.settings.get("run", {}).get("best_step")
    if best is not None:
        accuracy.axvline(best, color="grey", linestyle="--", linewidth=1)
        accuracy.text(best, accuracy.get_ylim()[0], f" kept: step {best}", fontsize=8, va="bottom")
    ax.set_title("distillation curve", fontsize=9)


def draw_structure(ax, fig, bundle: Bundle) -> None:
    order = torch.argsort(bundle.labels, stable=True)
    image = ax.imshow(bundle.adjacency[order][:, order].numpy(), cmap="viridis", vmin=0, interpolation="nearest")
    boundaries = torch.cumsum(torch.bincount(bundle.labels, minlength=bundle.dataset.num_classes), 0)[:-1].tolist()
    for edge in boundaries:
        ax.axhline(edge - 0.5, color="white", linewidth=0.5)
        ax.axvline(edge - 0.5, color="white", linewidth=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("synthetic adjacency (nodes sorted by class)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="edge weight")


def draw_balance(ax, bundle: Bundle, colour) -> None:
    classes = bundle.dataset.label_names
    counts = torch.bincount(bundle.labels, minlength=len(classes)).tolist()
    ax.bar(range(len(classes)), counts, color=[colour(c) for c in range(len(classes))])
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=6 if len(classes) > 20 else 7)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("synthetic nodes per class", fontsize=9)


def plot_bundle(bundle: Bundle, path: Path, real=None) -> Path:
    """Draw the bundle to a PNG at `path` (atomically). `real`: the real graph as
    `talk_cli.pipeline.real_graph(bundle)` returns it, to place the synthetic nodes among the real ones."""
    has_edges = bool((bundle.adjacency > 0).any())
    panels = 4 if has_edges else 3
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 5.2))
    palette = plt.get_cmap("tab20" if bundle.dataset.num_classes > 10 else "tab10")
    colour = lambda cls: palette(cls % palette.N)  # noqa: E731
    draw_projection(axes[0], bundle, colour, real)
    draw_curve(axes[1], bundle)
    if has_edges:
        draw_structure(axes[2], fig, bundle)
    draw_balance(axes[-1], bundle, colour)
    if bundle.dataset.num_classes <= MAX_LEGEND_CLASSES:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(bundle.dataset.num_classes, 10), fontsize=8, frameon=False)
    edges = "" if has_edges else "; no edges among the picked nodes" if learned_structure(bundle) is None else "; no synthetic edges (structure: identity)"
    fig.suptitle(f"{bundle.dataset.name}: {bundle.num_synthetic} synthetic nodes by {bundle.distillation.method}{edges}")
    fig.tight_layout(rect=(0, 0.08 if bundle.dataset.num_classes <= MAX_LEGEND_CLASSES else 0, 1, 1))

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
