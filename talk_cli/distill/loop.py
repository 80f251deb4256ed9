"""The kernel-matching outer loop shared by `talk` and `kernel-features` (docs/method.md).

One outer step:
  1. X_s = the representation's features for all synthetic nodes, without autograd;
  2. the KRR loss of predicting a batch of real training labels from (X_s, A_s, Y_s) under the
     graph-aware kernel, differentiated with respect to X_s (and A_s, Y_s when learned);
  3. the representation injects ∂loss/∂X_s into its parameters (for TaLK: through the LM,
     chunk by chunk), and Adam steps.
Every `eval_every` steps the synthetic set's accuracy on the real validation nodes (by KRR, or
by a GCN trained on it: `select`) is measured and the best state kept; the run ends with the
best state.

Under torchrun every rank runs this loop on its rows of the real graph (`RealSide`): each
computes the loss and validation on the nodes it holds, the ranks sum the gradients, and every
rank applies the same update (docs/scale.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from talk_cli import distributed
from talk_cli.clock import PhaseClock
from talk_cli.data.tag import TAG
from talk_cli.distill.inner import DenseGCN, train_lm_and_gcn
from talk_cli.distill.methods import METHODS
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.synthetic import SyntheticGraph, class_allocation, initial_embeddings, pick_seed_nodes
from talk_cli.encode.encoder import EncodeSettings, encode_texts
from talk_cli.encode.lm import LanguageModel, check_length
from talk_cli.encode.lora import trainable_copy, trained_parameters
from talk_cli.graph import normalized_adjacency_dense, normalized_adjacency_sparse
from talk_cli.errors import SettingsError
from talk_cli.gnn.train import EvalSettings, RealNodes, synthetic_training, training_targets, validation_run
from talk_cli.kernel import KERNEL_DTYPE, RealGraphSide, RowShard, cross_kernel, krr_loss, krr_predict, synthetic_kernel


VALIDATION_BLOCK = 8192  # validation nodes scored at a time
# `select: gcn`: one seeded GCN run of the gnn protocol's model per validation, checked on the
# real validation nodes every 10 of its epochs (each check is a pass over the whole real graph).
GCN_SELECTION = EvalSettings(runs=1, eval_every=10)


@dataclass
class StepReport:
    step: int
    steps: int
    loss: float
    val_accuracy: float | None  # only on validation steps
    best_val_accuracy: float
    # Which loop the step belongs to: the token loop, or one of the warm start's two stages before
    # it (its free-feature loop, then the inversion, whose loss is the squared error it fits).
    phase: str = "tokens"


TOKEN_PHASE = StepReport.phase
WARM_START_PHASES = ("free features", "inversion")


@dataclass
class DistillOutcome:
    """What a run produced: the synthetic set (for kernel methods the best by validation
    accuracy) and its story."""

    embeddings: torch.Tensor
    attention_mask: torch.Tensor
    adjacency: torch.Tensor
    labels: torch.Tensor
    soft_labels: torch.Tensor | None
    features: torch.Tensor
    seed_nodes: torch.Tensor
    best_step: int
    best_val_accuracy: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_step: int = 0
    warm_start: dict[str, Any] | None = None  # what the feature-to-token inversion reached
    stopped_at: int | None = None  # the step at which `patience` ended the loop, if it did
    phase_seconds: dict[str, float] = field(default_factory=dict)  # where the time went (PhaseClock)


class StopRequested(Exception):
    """Raised by an `on_step` callback to stop the run at this step boundary (the CLI's Ctrl-C):
    the run then checkpoints the state after the step and stops with `Interrupted`."""


class Interrupted(KeyboardInterrupt):
    """A run stopped on request; the message says what was saved and how to continue."""


class RealSide:
    """The real graph as the loop sees it: the kernel's side of it, and the nodes that drive the
    loss (training) and the selection (validation). Under torchrun the kernel side holds this
    rank's contiguous share of the rows; `held` says which of a set of nodes are in it.

    With `select: gcn`, rank 0 also holds the whole real graph with the features the bundle
    will be evaluated with (`gcn_graph`): the GCN that judges a synthetic set runs there alone.
    It keeps those features when the inner loop refreshes the kernel's, because `talk evaluate`
    reads bundles with the pretrained LM."""

    def __init__(self, tag: TAG, features: torch.Tensor, settings: DistillSettings, device: torch.device):
        self.device, self.spec = device, settings.kernel_spec()
        self.shard = RowShard(*distributed.row_range(tag.num_nodes), gather=distributed.gather_rows)
        self.train_nodes = torch.nonzero(tag.train_mask).flatten()
        self.val_nodes = torch.nonzero(tag.val_mask).flatten()
        self.labels = tag.labels.to(device)
        self.adjacency = normalized_adjacency_sparse(tag.edge_index, tag.num_nodes, KERNEL_DTYPE).to(device)
        self.gcn_graph = RealNodes.of(tag, features, device) if settings.select == "gcn" and distributed.rank() == 0 else None
        self.set_features(features)

    def set_features(self, features: torch.Tensor) -> None:
        self.kernel_side = RealGraphSide(self.adjacency, features.to(self.device), self.spec, self.shard)

    def held(self, nodes: torch.Tensor) -> torch.Tensor:
        return nodes[(nodes >= self.shard.start) & (nodes < self.shard.stop)]


def check_shardable(settings: DistillSettings) -> None:
    """Under torchrun, refuse what the sharded loop does not do (before anything is encoded)."""
    if distributed.launched() and METHODS[settings.method].learns and (settings.inner_every or settings.kernel == "interleaved"):
        raise SettingsError(
            "under torchrun the outer loop shards the propagate-first kernel only, without the inner loop "
            "(--inner-every 0); run the interleaved kernel or the inner loop in one process"
        )


class Distiller:
    """One kernel-method run: the synthetic graph, the real side, Adam, the batch sampler, the
    best state so far and, when the inner loop is on, its GCN. Complete once constructed."""

    def __init__(
        self,
        tag: TAG,
        lm: LanguageModel,
        real_features: torch.Tensor,
        settings: DistillSettings,
        device: torch.device,
        real: RealSide | None = None,
        seed_nodes: torch.Tensor | None = None,
        clock: PhaseClock | None = None,
        stage: str = TOKEN_PHASE,
    ):
        """`real`, `seed_nodes` and `clock` let a warm-start run share its parent's real side,
        seeds and clock; `stage` names its loop's phases on the clock."""
        method = METHODS[settings.method]
        if not method.learns:
            raise ValueError(f"{settings.method} is a coreset: it has no outer loop")
        check_shardable(settings)
        self.tag, self.lm, self.settings, self.device = tag, lm, settings, device
        self.clock, self.stage = clock or PhaseClock(device), stage
        check_length(lm, settings.seq_len, "--seq-len")
        torch.manual_seed(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed)
        lm.model.to(device=device, dtype=torch.float32).eval()
        lm.model.requires_grad_(False)  # the outer loop learns the synthetic set, not the LM
        self.real = real or RealSide(tag, real_features, settings, device)

        self.counts = class_allocation(tag, settings)
        if seed_nodes is None:
            seed_nodes = distributed.from_rank_0(pick_seed_nodes(tag, real_features, self.counts, settings.seed).to(device)).cpu()
        self.seed_nodes = seed_nodes
        self.real_features = real_features
        # With the inner loop on, the outer loop reads the synthetic texts through the LM that the
        # inner rounds fine-tune: a copy of the pretrained one (every weight, or LoRA adapters).
        # Bundles are read with the pretrained LM, which nothing changes.
        self.tuned = self.tuned_lm() if settings.inner_every else None
        embeddings, mask = initial_embeddings([tag.texts[i] for i in self.seed_nodes], lm, settings.seq_len)
        representation = method.learner(
            embeddings.to(device), mask.to(device), real_features[self.seed_nodes].to(device), self.tuned or lm, settings.lm_chunk
        )
        self.synthetic = SyntheticGraph(representation, tag.labels[self.seed_nodes].to(device), tag.num_classes, settings)
        self.optimizer = torch.optim.Adam(self.synthetic.param_groups)
        self.gcn = DenseGCN(lm.identity.hidden_size, tag.num_classes).to(device) if settings.inner_every else None
        # The inner loop's view of the real texts: every node's features as last encoded (pretrained
        # until a round refreshes it), so a round re-encodes a batch, not the whole graph.
        self.feature_table = real_features.clone() if settings.inner_every else None

        self.step = 0
        self.checks_since_best = 0  # validations since the best one (`patience` stops the loop)
        self.stopped = False
        self.warm_start_report: dict[str, Any] | None = None  # set by warm_start()
        self.warm_start_val: float | None = None  # its validation of the inverted set (step 0)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"step": 0, "val": -1.0, "state": self.synthetic.state_dict()}

    def features(self) -> torch.Tensor:
        return self.synthetic.representation.features()

    def tuned_lm(self) -> LanguageModel:
        """A fresh trainable copy of the pretrained LM for the inner loop, frozen between rounds."""
        settings = self.settings
        tuned = trainable_copy(self.lm, self.device, settings.lora_rank, settings.lora_alpha, settings.lora_dropout)
        self.tuned_parameters = trained_parameters(tuned)
        for parameter in self.tuned_parameters:
            parameter.requires_grad_(False)  # the outer loop's backward reaches the tokens only
        tuned.model.eval()
        return tuned

    def warm_start(self, on_step: Callable[[StepReport], None] | None = None) -> None:
        """Feature-to-token inversion (`invert_steps` > 0, talk): run the same kernel loop on free
        feature vectors from the same seeds (no LM in it, so it is cheap), then fit the token
        embeddings so that pool(LM(E)) matches the vectors it selected, and take its learned
        labels and structure. The KRR loop on E then starts where free features ended instead
        of at the seed texts: gradients through the LM move E slowly and unevenly, while free
        input embeddings let the LM reproduce much of the free solution (the report says how
        closely: `inversion_cosine`; docs/method.md). Each stage's steps go to `on_step`, marked
        with their phase."""
        started = time.perf_counter()
        free_phase, inversion_phase = WARM_START_PHASES
        free = Distiller(
            self.tag, self.lm, self.real_features, dataclasses.replace(self.settings, method="kernel-features", invert_steps=0, inner_every=0),
            self.device, real=self.real, seed_nodes=self.seed_nodes, clock=self.clock, stage=free_phase,
        )
        target = distill(free, on_step and (lambda report: on_step(dataclasses.replace(report, phase=free_phase))))
        state = {k: v for k, v in free.synthetic.state_dict().items() if not k.startswith("features.")}
        self.synthetic.load_state_dict({**self.synthetic.state_dict(), **state})

        def on_fit_step(step: int, loss: float) -> None:
            on_step(StepReport(step, self.settings.invert_steps, loss, None, target.best_val_accuracy, inversion_phase))

        with self.clock(inversion_phase):
            taken, _ = self.synthetic.representation.fit(
                target.features.to(self.device), self.settings.invert_steps, self.settings.lr, self.settings.invert_cosine, on_step and on_fit_step
            )
        features = self.features()
        # The inverted set is the token loop's step 0: validated once, here, for both.
        self.warm_start_val = self.remember_if_best(features.to(KERNEL_DTYPE))
        self.warm_start_report = {
            "free_val_accuracy": round(target.best_val_accuracy, 6),
            "free_best_step": target.best_step,
            "inverted_val_accuracy": round(self.warm_start_val, 6),
            "inversion_cosine": round(float(torch.nn.functional.cosine_similarity(features, target.features.to(self.device)).mean()), 6),
            "inversion_steps": taken,
            "seconds": round(time.perf_counter() - started, 3),
        }

    def predict(self, features: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """KRR scores of real nodes `nodes` (which this rank must hold) from the synthetic set with
        these features."""
        a_hat = normalized_adjacency_dense(self.synthetic.adjacency(features))
        k_ss, state = synthetic_kernel(a_hat, features, self.real.spec)
        rows = (nodes - self.real.shard.start).to(self.device)
        k_bs = cross_kernel(self.real.kernel_side, a_hat, features, state, rows=rows)
        return krr_predict(k_bs, k_ss, self.synthetic.targets.to(KERNEL_DTYPE), self.settings.ridge)

    def kernel_loss(self, features: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of the batch's KRR loss (the parts add up to the whole batch's)."""
        held = self.real.held(batch)
        labels = self.real.labels[held.to(self.device)]
        return krr_loss(self.predict(features, held), labels, self.tag.num_classes, self.settings.loss, batch_size=len(batch))

    def sample_batch(self) -> torch.Tensor:
        size, train = self.settings.krr_batch, self.real.train_nodes
        if size == 0 or size >= len(train):
            return train
        return train[torch.randperm(len(train), generator=self.generator)[:size]]

    def validation_accuracy(self, features: torch.Tensor) -> float:
        return self.gcn_accuracy(features) if self.settings.select == "gcn" else self.krr_accuracy(features)

    def gcn_accuracy(self, features: torch.Tensor) -> float:
        """Validation accuracy of a GCN trained on the synthetic set as `talk evaluate` will train
        it. Rank 0 trains it and sends the score to the other ranks, which wait."""
        score = torch.zeros(1, dtype=torch.float64, device=self.device)
        if self.real.gcn_graph is not None:
            synthetic = self.synthetic
            soft = synthetic.targets.detach() if synthetic.soft_labels else None
            training = synthetic_training(
                features.float(), synthetic.adjacency(features).float().detach(), training_targets(synthetic.labels, soft)
            )
            score[0] = validation_run(training, self.real.gcn_graph, GCN_SELECTION, seed=self.settings.seed)
        return float(distributed.from_rank_0(score))

    def krr_accuracy(self, features: torch.Tensor) -> float:
        """KRR accuracy on the real validation nodes, in blocks of rows: the cross kernel's
        intermediates on every validation node at once would cost gigabytes on a large graph."""
        held = self.real.held(self.real.val_nodes)
        correct = torch.zeros(1, dtype=torch.float64, device=self.device)
        with torch.no_grad():
            for block in held.split(VALIDATION_BLOCK):
                scores = self.predict(features, block)
                correct += (scores.argmax(dim=1) == self.real.labels[block.to(self.device)]).sum()
        return float(distributed.sum_over_ranks(correct)) / len(self.real.val_nodes)

    def stored_features(self, features: torch.Tensor) -> torch.Tensor:
        """The synthetic features as the bundle will store them: with the inner loop on, the tokens
        read through the pretrained LM (the inner loop's LM is transient), not the tuned one."""
        if self.tuned is None:
            return features
        tokens = self.synthetic.representation
        tokens.lm = self.lm
        try:
            return tokens.features().to(KERNEL_DTYPE)
        finally:
            tokens.lm = self.tuned

    def remember_if_best(self, features: torch.Tensor) -> float:
        """Validation accuracy of the current synthetic set; keep a copy when it is the best so far.
        A GCN judges the set as it will be stored, against the pretrained LM's real features (what
        `talk evaluate` reads); KRR judges it in the kernel's current view of the real graph."""
        with self.clock(f"{self.stage}: {self.settings.select} selection"):
            val = self.validation_accuracy(self.stored_features(features) if self.settings.select == "gcn" else features)
        if val > self.best["val"]:
            self.best = {"step": self.step, "val": val, "state": self.synthetic.state_dict()}
            self.checks_since_best = 0
        else:
            self.checks_since_best += 1
        return val

    @property
    def stalled(self) -> bool:
        """Whether `patience` validations in a row have not beaten the best (the loop then stops).
        Only the token loop stops: the evidence behind it is that loop's (docs/method.md), while
        free feature vectors (kernel-features, and the warm start's cheap first loop) keep
        improving late."""
        token_loop = self.stage == TOKEN_PHASE and METHODS[self.settings.method].reads_texts
        patience = self.settings.patience if token_loop else 0
        return patience > 0 and self.checks_since_best >= patience

    def outer_step(self) -> StepReport:
        """One step: validate (every `eval_every` steps), then update. A validation that leaves the
        loop stalled ends the run there, before an update nothing would read (`stopped`)."""
        stage, clock = self.stage, self.clock
        with clock(f"{stage}: synthetic features"):
            features = self.features().to(KERNEL_DTYPE)
        val = None
        if self.step % self.settings.eval_every == 0:
            validated = self.step == 0 and self.warm_start_val is not None  # by the warm start, just before
            val = self.warm_start_val if validated else self.remember_if_best(features)
        if val is not None and self.stalled:
            self.stopped = True
            self.history.append({"step": self.step + 1, "loss": None, "val_accuracy": val})
            return StepReport(self.step, self.settings.steps, float("nan"), val, self.best["val"])
        leaf = features.detach().requires_grad_()
        self.optimizer.zero_grad()
        with clock(f"{stage}: KRR loss and gradient"):
            loss = self.kernel_loss(leaf, self.sample_batch())
            loss.backward()
            for parameter in [leaf, *self.synthetic.graph_parameters]:  # each rank's rows gave a part
                distributed.sum_over_ranks(parameter.grad)
        with clock(f"{stage}: gradient injection"):
            self.synthetic.representation.inject(leaf.grad)
            self.optimizer.step()
        self.step += 1
        if self.gcn is not None and self.step % self.settings.inner_every == 0:
            with clock(f"{stage}: inner loop"):
                self.inner_round()
        loss_value = distributed.sum_over_ranks(loss.detach().reshape(1)).item()
        self.history.append({"step": self.step, "loss": loss_value, "val_accuracy": val})
        return StepReport(self.step, self.settings.steps, loss_value, val, self.best["val"])

    def inner_round(self) -> torch.Tensor:
        """Train LM + GCN on the synthetic set, then re-encode a batch of real nodes with that LM
        so the kernel sees the LM state that training on the synthetic set produces. Returns the
        refreshed nodes."""
        synthetic = self.synthetic
        targets = training_targets(synthetic.labels, synthetic.targets.detach() if synthetic.soft_labels else None)
        adjacency = synthetic.adjacency(self.features()).float().detach()
        tokens = synthetic.representation
        if self.settings.inner_restart:
            self.tuned = tokens.lm = self.tuned_lm()
            with torch.random.fork_rng():  # a fresh GCN that depends on the step, not on the RNG's history
                torch.manual_seed(self.settings.seed + self.step)
                self.gcn = DenseGCN(self.lm.identity.hidden_size, self.tag.num_classes).to(self.device)
        train_lm_and_gcn(
            self.tuned, self.tuned_parameters, self.gcn, tokens.token_embeddings, tokens.mask, adjacency, targets, self.settings.inner_steps, self.settings.inner_lr
        )
        return self.refresh_real_features()

    def refresh_real_features(self) -> torch.Tensor:
        """Batch-wise refresh (docs/method.md): re-encode `inner_refresh` training nodes drawn at
        random (every real node when 0) with the current LM, write them into the feature table and
        rebuild the kernel's real side from the table. The other nodes keep the features of the
        LM that last encoded them: a loss term's neighbours may lag behind the LM by some rounds."""
        train, size = self.real.train_nodes, self.settings.inner_refresh
        if size == 0:
            nodes = torch.arange(self.tag.num_nodes)
        else:
            nodes = train[torch.randperm(len(train), generator=self.generator)[:size]]
        encoded, _ = encode_texts(
            [self.tag.texts[i] for i in nodes.tolist()], self.tuned, EncodeSettings(max_length=self.settings.max_length), self.device
        )
        self.feature_table[nodes] = encoded
        self.real.set_features(self.feature_table)
        return nodes

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly where this one stands."""
        state = {
            "step": self.step,
            "history": self.history,
            "synthetic": self.synthetic.state_dict(),
            "best": self.best,
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.generator.get_state(),
            "warm_start": self.warm_start_report,
            "checks_since_best": self.checks_since_best,
        }
        if self.gcn is not None:
            state |= {"lm": self.tuned.model.state_dict(), "gcn": self.gcn.state_dict(), "feature_table": self.feature_table}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.synthetic.load_state_dict(state["synthetic"])
        self.best = state["best"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["sampler"])
        self.warm_start_report = state["warm_start"]
        self.checks_since_best = state["checks_since_best"]
        if self.gcn is not None:
            self.tuned.model.load_state_dict(state["lm"])
            self.gcn.load_state_dict(state["gcn"])
            self.feature_table = state["feature_table"]
            self.real.set_features(self.feature_table)
        self.step, self.history = state["step"], state["history"]

    def finish(self) -> DistillOutcome:
        """Validate the final state (unless the run stopped at a validation), restore the best one
        and compute what the bundle stores."""
        if not self.stopped:
            self.remember_if_best(self.features().to(KERNEL_DTYPE))
        self.synthetic.load_state_dict(self.best["state"])
        if self.tuned is not None:  # the stored set is what the pretrained LM reads
            self.synthetic.representation.lm = self.lm
            self.real.set_features(self.real_features)
        synthetic = self.synthetic
        features = self.features()
        adjacency = synthetic.adjacency(features.to(KERNEL_DTYPE)).float().detach()
        return DistillOutcome(
            embeddings=synthetic.representation.token_embeddings.float().cpu(),
            attention_mask=synthetic.representation.mask.cpu(),
            adjacency=adjacency.cpu(),
            labels=synthetic.labels.cpu(),
            soft_labels=synthetic.targets.detach().float().cpu() if synthetic.soft_labels else None,
            features=features.float().cpu(),
            seed_nodes=self.seed_nodes,
            best_step=self.best["step"],
            best_val_accuracy=self.best["val"],
            history=self.history,
            warm_start=self.warm_start_report,
            stopped_at=self.step if self.stopped else None,
            phase_seconds=self.clock.report(),
        )


def distill(
    distiller: Distiller,
    on_step: Callable[[StepReport], None] | None = None,
    on_checkpoint: Callable[[Distiller], None] | None = None,
) -> DistillOutcome:
    """Run the outer loop to `settings.steps`, from wherever `distiller` stands (resume)."""
    started = time.perf_counter()
    resumed_from = distiller.step
    if distiller.step == 0 and distiller.settings.warm_starts:
        distiller.warm_start(on_step)
    steps, every = distiller.settings.steps, distiller.settings.checkpoint_every
    while distiller.step < steps and not distiller.stopped:
        report = distiller.outer_step()
        if on_step:
            on_step(report)
        if on_checkpoint and distiller.step % every == 0 and distiller.step < steps and not distiller.stopped:
            with distiller.clock("checkpoints"):
                on_checkpoint(distiller)
    outcome = distiller.finish()
    outcome.seconds = time.perf_counter() - started
    outcome.resumed_from_step = resumed_from
    return outcome
