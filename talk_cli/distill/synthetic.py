"""The synthetic graph being learned: its size and class allocation, its initialisation from
real training nodes, and its structure and labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from talk_cli.data.tag import TAG
from talk_cli.distill.representation import Representation
from talk_cli.encode.lm import LanguageModel
from talk_cli.errors import SettingsError
from talk_cli.kernel import KERNEL_DTYPE

if TYPE_CHECKING:
    from talk_cli.distill.settings import DistillSettings


def synthetic_size(num_train: int, num_classes_present: int, ratio: float | None, size: int | None) -> int:
    """n_syn = max(#classes, round(ratio × |train|)), or `size` when given."""
    if size is not None:
        if size < num_classes_present:
            raise SettingsError(
                f"--size {size} is below the number of classes with training nodes ({num_classes_present}); every class needs at least one synthetic node"
            )
        return size
    return max(num_classes_present, round(ratio * num_train))  # type: ignore[operator]


def class_allocation(tag: TAG, settings: DistillSettings) -> list[int]:
    """Synthetic nodes per class for this dataset and the settings' ratio or size."""
    train_counts = tag.class_counts(tag.train_mask)
    n_syn = synthetic_size(int(tag.train_mask.sum()), sum(c > 0 for c in train_counts), settings.ratio, settings.size)
    power = settings.allocation_power
    if power is None:
        power = allocation_power(train_counts, n_syn, settings.min_class_nodes)
    return allocate(train_counts, n_syn, power, settings.min_class_nodes)


SPREADING_POWER = 0.5  # the square root


def allocation_power(train_counts: list[int], total: int, floor: int = 1) -> float:
    """The power an unset `allocation_power` allocates by: 1, which keeps the training class
    balance, unless proportional shares would leave half the classes or more with a single node;
    then the square root, which spreads the budget over them (docs/logs/method-evidence.md, "Class allocation by
    the budget": it raised validation on the many-class graphs, and the rule keeps 1 on Cora)."""
    shares = [n for n, count in zip(allocate(train_counts, total, 1.0, floor), train_counts) if count > 0]
    return SPREADING_POWER if 2 * sum(n == 1 for n in shares) >= len(shares) else 1.0


def allocate(train_counts: list[int], total: int, power: float, floor: int = 1) -> list[int]:
    """Synthetic nodes per class, proportional to (training count)^power (largest remainder), at
    least `floor` for every class that has training nodes (fewer only where the class has fewer,
    and one each where `total` cannot give every class `floor`), none for classes without. Power 1
    keeps the training class balance; below 1, small classes get more than their share."""
    present = [c for c, count in enumerate(train_counts) if count > 0]
    least = torch.tensor([min(floor, train_counts[c]) for c in present])
    if least.sum() > total:  # the budget does not allow the floor: one node per class
        least = torch.ones_like(least)
    share = torch.tensor([train_counts[c] for c in present], dtype=torch.float64) ** power
    exact = share / share.sum() * total
    alloc = torch.maximum(exact.floor().long(), least)
    while alloc.sum() < total:  # hand out the remainder by largest fractional part
        alloc[torch.argmax(exact - alloc)] += 1
    while alloc.sum() > total:  # the floor overshot: take from the best-served class above its floor
        alloc[torch.argmax(torch.where(alloc > least, alloc - exact, torch.tensor(-1e9, dtype=torch.float64)))] -= 1
    counts = [0] * len(train_counts)
    for c, n in zip(present, alloc.tolist()):
        counts[c] = n
    return counts


KMEANS_MEMBERS = 10_000  # k-means of a larger class runs on this many of its members, drawn at random


def pick_seed_nodes(tag: TAG, features: torch.Tensor, counts: list[int], seed: int) -> torch.Tensor:
    """For each class, the training nodes nearest to k-means centres of the class (k = its count).
    A class with more than KMEANS_MEMBERS training nodes is clustered on a random sample of them:
    on a million-node graph, k-means over every member would outlast the distillation."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls, k in enumerate(counts):
        if k == 0:
            continue
        members = torch.nonzero(tag.train_mask & (tag.labels == cls)).flatten()
        if len(members) > max(KMEANS_MEMBERS, k):
            members = members[torch.randperm(len(members), generator=generator)[: max(KMEANS_MEMBERS, k)]].sort().values
        points = features[members].double().numpy()
        centres = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(points).cluster_centers_
        distances = torch.cdist(torch.from_numpy(centres), torch.from_numpy(points))
        taken: set[int] = set()
        for row in distances:
            for index in torch.argsort(row).tolist():  # nearest member not already taken
                if index not in taken:
                    taken.add(index)
                    chosen.append(int(members[index]))
                    break
    return torch.tensor(chosen, dtype=torch.long)


def initial_embeddings(texts: list[str], lm: LanguageModel, seq_len: int, padding: str = "max_length") -> tuple[torch.Tensor, torch.Tensor]:
    """The first `seq_len` input embeddings of each text, and a mask of the positions that
    hold a real token. Texts are padded to `seq_len` ("max_length") or to the longest of them
    ("longest"), and the padding is masked."""
    tokens = lm.tokenizer(texts, truncation=True, max_length=seq_len, padding=padding, return_tensors="pt")
    with torch.no_grad():
        embeddings = lm.embeddings(tokens["input_ids"].to(lm.embeddings.weight.device)).float()
    return embeddings.cpu(), tokens["attention_mask"].long()


def vocabulary_ids(lm: LanguageModel) -> torch.Tensor:
    """The ids a vocabulary start draws from: every token but the special ones and the bracketed
    placeholders some vocabularies reserve (BERT's `[unused12]`), whose embeddings were never trained."""
    special = set(lm.tokenizer.all_special_ids)
    placeholders = {i for token, i in lm.tokenizer.get_vocab().items() if token[:1] + token[-1:] in ("[]", "<>")}
    size = lm.embeddings.weight.shape[0]
    return torch.tensor([i for i in range(size) if i not in special and i not in placeholders], dtype=torch.long)


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after any text's tokens."""
    framed = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(framed) - len(plain) + 1) if framed[i : i + len(plain)] == plain)
    return framed[:start], framed[start + len(plain) :]


def vocabulary_embeddings(lm: LanguageModel, n: int, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences of `seq_len` input embeddings that read no training text: tokens drawn uniformly
    from the LM's vocabulary with `seed`, framed by the special tokens its tokenizer adds to any
    text ([CLS] ... [SEP] for BERT), every position attended."""
    generator = torch.Generator().manual_seed(seed)
    pool = vocabulary_ids(lm)
    prefix, suffix = special_frame(lm.tokenizer)
    body = seq_len - len(prefix) - len(suffix)
    if body < 1:
        raise SettingsError(f"--seq-len {seq_len} leaves no room for a token beside the LM's special tokens")
    drawn = pool[torch.randint(len(pool), (n, body), generator=generator)]
    ids = torch.cat([torch.tensor(prefix).expand(n, -1), drawn, torch.tensor(suffix).expand(n, -1)], dim=1).long()
    with torch.no_grad():
        embeddings = lm.embeddings(ids.to(lm.embeddings.weight.device)).float()
    return embeddings.cpu(), torch.ones(ids.shape, dtype=torch.long)


def starting_embeddings(init: str, texts: list[str], lm: LanguageModel, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a learned set's token sequences start (`init`, one of settings.INITS): the seed
    nodes' `texts`, or tokens drawn from the vocabulary, one sequence per text."""
    if init == "vocab":
        return vocabulary_embeddings(lm, len(texts), seq_len, seed)
    return initial_embeddings(texts, lm, seq_len)


def knn_adjacency(features: torch.Tensor, k: int) -> torch.Tensor:
    """Symmetric 0/1 graph joining each node to its k most cosine-similar others."""
    n = features.shape[0]
    k = min(k, n - 1)
    adjacency = torch.zeros(n, n, dtype=features.dtype, device=features.device)
    if k <= 0:
        return adjacency
    normalised = F.normalize(features, dim=1)
    similarity = normalised @ normalised.T
    similarity.fill_diagonal_(-float("inf"))
    neighbours = similarity.topk(k, dim=1).indices
    adjacency.scatter_(1, neighbours, 1.0)
    return torch.maximum(adjacency, adjacency.T)


def learned_adjacency(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric, non-negative, zero-diagonal weights from unconstrained logits."""
    symmetric = (logits + logits.T) / 2
    off_diagonal = 1 - torch.eye(logits.shape[0], dtype=logits.dtype, device=logits.device)
    return torch.sigmoid(symmetric) * off_diagonal


class SyntheticGraph:
    """The synthetic graph being learned: node features (from a representation), labels with
    their KRR targets (learned when soft), and the structure: none, kNN of the current features,
    or learned edge weights that start from the kNN graph."""

    def __init__(self, representation: Representation, labels: torch.Tensor, num_classes: int, settings: DistillSettings):
        self.representation = representation
        self.labels = labels
        self.structure, self.knn, self.soft_labels = settings.structure, settings.knn, settings.soft_labels
        one_hot = F.one_hot(labels, num_classes).to(torch.float32)
        self.targets = torch.nn.Parameter(one_hot) if settings.soft_labels else one_hot
        self.adjacency_logits = None
        if settings.structure == "learned":
            start = knn_adjacency(representation.features().double(), settings.knn)
            self.adjacency_logits = torch.nn.Parameter((4 * start - 2).float())  # kNN edges start at sigmoid(2)
        groups = [{"params": representation.parameters(), "lr": settings.lr}]
        self.graph_parameters = []  # learned structure and labels: the loss reaches them directly
        if self.adjacency_logits is not None:
            groups.append({"params": [self.adjacency_logits], "lr": settings.lr_adjacency})
            self.graph_parameters.append(self.adjacency_logits)
        if settings.soft_labels:
            groups.append({"params": [self.targets], "lr": settings.lr_labels})
            self.graph_parameters.append(self.targets)
        self.param_groups = groups

    def adjacency(self, features: torch.Tensor) -> torch.Tensor:
        """A_s (zero diagonal) for the current features; learned weights in the kernel's dtype."""
        if self.adjacency_logits is not None:
            return learned_adjacency(self.adjacency_logits.to(KERNEL_DTYPE))
        if self.structure == "knn":
            return knn_adjacency(features.detach(), self.knn)
        return torch.zeros(features.shape[0], features.shape[0], dtype=features.dtype, device=features.device)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"features.{k}": v for k, v in self.representation.state_dict().items()}
        state["targets"] = self.targets.detach().clone()
        if self.adjacency_logits is not None:
            state["adjacency_logits"] = self.adjacency_logits.detach().clone()
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        prefix = "features."
        self.representation.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        with torch.no_grad():
            self.targets.copy_(state["targets"])
            if self.adjacency_logits is not None:
                self.adjacency_logits.copy_(state["adjacency_logits"])
