"""The kernel-matching outer loop shared by `talk` and `kernel-features` (docs/method.md).

One outer step:
  1. X_s = the representation's features for all synthetic nodes, without autograd;
  2. the KRR loss of predicting a batch of real training labels from (X_s, A_s, Y_s) under the
     graph-aware kernel, differentiated with respect to X_s (and A_s, Y_s when learned);
  3. the representation injects ∂loss/∂X_s into its parameters (for TaLK: through the LM,
     chunk by chunk), and Adam steps.
Every `eval_every` steps the synthetic set's accuracy on the real validation nodes (by KRR, or
by a GCN trained on it: `select`; `real.py`) is measured and the best state kept; the run ends
with the best state. The warm start that may come first is `warm_start.py`; the inner loop that
may follow a step is `inner.py`.

Under torchrun every rank runs this loop on its rows of the real graph (`RealSide`): each
computes the loss and validation on the nodes it holds, the ranks sum the gradients, and every
rank applies the same update (docs/scale.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from talk_cli import distributed
from talk_cli.clock import PhaseClock
from talk_cli.data.tag import TAG
from talk_cli.distill.inner import InnerLoop
from talk_cli.distill.methods import METHODS
from talk_cli.distill.real import KRRFit, RealSide, gcn_accuracy, krr_accuracy
from talk_cli.distill.settings import DistillSettings
from talk_cli.distill.synthetic import SyntheticGraph, class_allocation, pick_seed_nodes, starting_embeddings
from talk_cli.encode.lm import LanguageModel, check_length, frozen_copy
from talk_cli.errors import SettingsError
from talk_cli.gnn.train import synthetic_training, training_targets
from talk_cli.kernel import KERNEL_DTYPE, krr_loss


@dataclass
class StepReport:
    step: int
    steps: int
    loss: float
    val_accuracy: float | None  # only on validation steps
    best_val_accuracy: float
    # Which loop the step belongs to: the token loop, or one of the warm start's two stages before
    # it (its free-feature loop, then the inversion, whose loss is `inversion_loss`).
    phase: str = "tokens"


TOKEN_PHASE = StepReport.phase
# Validations without a new best that end a token loop which starts below the free set its warm
# start fitted: it has a gap to close, so it gets more than `patience`'s usual one (issue 58).
CATCH_UP_PATIENCE = 3


def below_free_set(warm_start: dict[str, Any]) -> bool:
    """Whether a warm start's inverted set (its report, `Distiller.warm_start_report`) validated
    below the free set it was fitted to: a gap for the token loop to close."""
    return warm_start["inverted_val_accuracy"] < warm_start["free_val_accuracy"]


WARM_START_PHASES = ("free features", "inversion")


def phase_offsets(settings: DistillSettings) -> tuple[dict[str, int], int]:
    """Where each loop's steps start on one count over the whole run (the warm start's free-feature
    loop and inversion, then the token loop), and the count's end; 0 for a method with no loop."""
    free, inversion = (settings.steps, settings.invert_steps) if settings.warm_starts else (0, 0)
    offsets = dict(zip((*WARM_START_PHASES, TOKEN_PHASE), (0, free, free + inversion)))
    return offsets, free + inversion + settings.steps if METHODS[settings.method].learns else 0


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


def check_shardable(settings: DistillSettings) -> None:
    """Under torchrun, refuse what the sharded loop does not do (before anything is encoded)."""
    if distributed.launched() and METHODS[settings.method].learns and (settings.inner_every or settings.kernel == "interleaved"):
        raise SettingsError(
            "under torchrun the outer loop shards the propagate-first kernel only, without the inner loop "
            "(--inner-every 0); run the interleaved kernel or the inner loop in one process"
        )


@dataclass(frozen=True)
class Shared:
    """What every loop of one run reads and none changes: the data, a frozen copy of the LM (the
    loops learn the synthetic set, never the LM), the real graph as the kernel sees it, the seed
    nodes with their starting token embeddings, and the clock. The warm start's free-feature loop
    and the token loop share one."""

    tag: TAG
    lm: LanguageModel
    real_features: torch.Tensor
    real: RealSide
    seed_nodes: torch.Tensor
    embeddings: torch.Tensor
    mask: torch.Tensor
    device: torch.device
    clock: PhaseClock

    @classmethod
    def build(cls, tag: TAG, lm: LanguageModel, real_features: torch.Tensor, settings: DistillSettings, device: torch.device) -> Shared:
        check_shardable(settings)
        lm = frozen_copy(lm, device)
        check_length(lm, settings.seq_len, "--seq-len")
        real = RealSide(tag, real_features, settings, device)
        counts = class_allocation(tag, settings)
        seed_nodes = distributed.from_rank_0(pick_seed_nodes(tag, real_features, counts, settings.seed).to(device)).cpu()
        embeddings, mask = starting_embeddings(settings.init, [tag.texts[i] for i in seed_nodes], lm, settings.seq_len, settings.seed)
        return cls(tag, lm, real_features, real, seed_nodes, embeddings.to(device), mask.to(device), device, PhaseClock(device))


def selection(
    settings: DistillSettings, real: RealSide, synthetic: SyntheticGraph, stored: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], float]:
    """How a loop scores its synthetic set on the real validation nodes (`select`): a GCN trained
    on the set as it will be stored (`stored(features)`), against the pretrained LM's real features
    (what `talk evaluate` reads); or KRR in the kernel's current view of the real graph."""
    if settings.select == "gcn":
        return lambda features: gcn_accuracy(real, synthetic, stored(features), settings.seed)
    return lambda features: krr_accuracy(real, synthetic, features, settings.ridge)


class Distiller:
    """One kernel loop over a `Shared` real side: the synthetic graph, Adam, the batch sampler, the
    best state so far, its selection and, when the inner loop is on, that loop (which owns the LM
    the synthetic texts are read through between its rounds). Complete once constructed;
    `Distiller.start` builds the shared side too."""

    def __init__(self, shared: Shared, settings: DistillSettings, stage: str = TOKEN_PHASE):
        """`stage` names the loop's phases on the clock (the warm start's free-feature loop shares
        the token loop's `shared`)."""
        method = METHODS[settings.method]
        if not method.learns:
            raise ValueError(f"{settings.method} is a coreset: it has no outer loop")
        self.shared, self.settings, self.stage = shared, settings, stage
        self.tag, self.lm, self.real, self.clock, self.device = shared.tag, shared.lm, shared.real, shared.clock, shared.device
        torch.manual_seed(settings.seed)
        self.generator = torch.Generator().manual_seed(settings.seed)
        seed_features = shared.real_features[shared.seed_nodes].to(shared.device)
        representation = method.learner(shared.embeddings, shared.mask, seed_features, shared.lm, settings.lm_chunk)
        self.synthetic = SyntheticGraph(representation, shared.tag.labels[shared.seed_nodes].to(shared.device), shared.tag.num_classes, settings)
        self.optimizer = torch.optim.Adam(self.synthetic.param_groups)
        self.inner = InnerLoop(shared.lm, shared.tag, shared.real_features, settings, shared.device) if settings.inner_every else None
        if self.inner is not None:  # between rounds the outer loop reads the synthetic texts through the LM they tune
            representation.read_through = lambda: self.inner.tuned
        self.score = selection(settings, shared.real, self.synthetic, self.stored_features)

        self.step = 0
        self.checks_since_best = 0  # validations since the best one (`patience` stops the loop)
        self.stopped = False
        self.warm_start_report: dict[str, Any] | None = None  # set by warm_start.warm_start()
        self.warm_start_val: float | None = None  # its validation of the inverted set (step 0)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"step": 0, "val": -1.0, "state": self.synthetic.state_dict()}

    @classmethod
    def start(cls, tag: TAG, lm: LanguageModel, real_features: torch.Tensor, settings: DistillSettings, device: torch.device) -> Distiller:
        """A run's token loop (or kernel-features loop) with its own shared side."""
        return cls(Shared.build(tag, lm, real_features, settings, device), settings)

    @property
    def seed_nodes(self) -> torch.Tensor:
        return self.shared.seed_nodes

    def features(self) -> torch.Tensor:
        return self.synthetic.representation.features()

    def kernel_loss(self, features: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of the batch's KRR loss (the parts add up to the whole batch's)."""
        held = self.real.held(batch)
        labels = self.real.labels[held.to(self.device)]
        scores = KRRFit(self.real, self.synthetic, features, self.settings.ridge).scores(held)
        return krr_loss(scores, labels, self.tag.num_classes, self.settings.loss, batch_size=len(batch))

    def sample_batch(self) -> torch.Tensor:
        size, train = self.settings.krr_batch, self.real.train_nodes
        if size == 0 or size >= len(train):
            return train
        return train[torch.randperm(len(train), generator=self.generator)[:size]]

    def stored_features(self, features: torch.Tensor) -> torch.Tensor:
        """The synthetic features as the bundle will store them: with the inner loop on, the tokens
        read through the pretrained LM (the inner loop's LM is transient), not the tuned one."""
        if self.inner is None:
            return features
        return self.synthetic.representation.features(through=self.lm).to(KERNEL_DTYPE)

    def remember_if_best(self, features: torch.Tensor, phase: str | None = None) -> float:
        """Validation accuracy of the current synthetic set (`selection`); keep a copy when it is the
        best so far. `phase` names the loop on the clock (the warm start's inversion validates through here)."""
        with self.clock(f"{phase or self.stage}: {self.settings.select} selection"):
            val = self.score(features)
        if val > self.best["val"]:
            self.best = {"step": self.step, "val": val, "state": self.synthetic.state_dict()}
            self.checks_since_best = 0
        else:
            self.checks_since_best += 1
        return val

    @property
    def behind_start(self) -> bool | None:
        """After a warm start, whether its inverted set validates below the free set it was fitted
        to (the token loop then has a gap to close); None without a warm start."""
        return None if self.warm_start_report is None else below_free_set(self.warm_start_report)

    @property
    def stalled(self) -> bool:
        """Whether `patience` validations in a row have not beaten the best (the loop then stops).
        Only the token loop stops: the evidence behind it is that loop's (docs/method.md), while
        free feature vectors (kernel-features, and the warm start's cheap first loop) keep
        improving late. A token loop closing a warm start's gap gets `CATCH_UP_PATIENCE`."""
        token_loop = self.stage == TOKEN_PHASE and METHODS[self.settings.method].reads_texts
        patience = self.settings.patience if token_loop else 0
        if patience and self.behind_start:
            patience = max(patience, CATCH_UP_PATIENCE)
        return patience > 0 and self.checks_since_best >= patience

    def stop_at_start(self) -> None:
        """End the token loop before its first step: step 0, already validated, is what it keeps."""
        self.stopped = True
        self.history.append({"step": 1, "loss": None, "val_accuracy": self.warm_start_val})

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
        if self.inner is not None and self.step % self.settings.inner_every == 0:
            with clock(f"{stage}: inner loop"):
                self.inner_round()
        loss_value = distributed.sum_over_ranks(loss.detach().reshape(1)).item()
        self.history.append({"step": self.step, "loss": loss_value, "val_accuracy": val})
        return StepReport(self.step, self.settings.steps, loss_value, val, self.best["val"])

    def inner_round(self) -> torch.Tensor:
        """Train LM + GCN on the synthetic set, then re-encode a batch of real nodes with that LM
        so the kernel sees the LM state that training on the synthetic set produces. Returns the
        refreshed nodes."""
        synthetic, inner = self.synthetic, self.inner
        targets = training_targets(synthetic.labels, synthetic.targets.detach() if synthetic.soft_labels else None)
        features = self.features()
        graph = synthetic_training(features, synthetic.adjacency(features).float().detach(), targets)  # its features are the LM's, read each step
        tokens = synthetic.representation
        if self.settings.inner_restart:
            inner.restart(self.step)
        inner.train(tokens.token_embeddings, tokens.mask, graph)
        nodes = inner.refresh(self.real.train_nodes, self.generator)
        self.real.set_features(inner.feature_table)
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
        if self.inner is not None:
            state |= self.inner.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.synthetic.load_state_dict(state["synthetic"])
        self.best = state["best"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["sampler"])
        self.warm_start_report = state["warm_start"]
        self.checks_since_best = state["checks_since_best"]
        if self.inner is not None:
            self.inner.load_state_dict(state)
            self.real.set_features(self.inner.feature_table)
        self.step, self.history = state["step"], state["history"]

    def finish(self) -> DistillOutcome:
        """Validate the final state (unless the run stopped at a validation), restore the best one
        and compute what the bundle stores."""
        if not self.stopped:
            self.remember_if_best(self.features().to(KERNEL_DTYPE))
        self.synthetic.load_state_dict(self.best["state"])
        if self.inner is not None:  # the kernel's view of the real graph as it was before the inner rounds
            self.real.set_features(self.shared.real_features)
        synthetic = self.synthetic
        features = synthetic.representation.features(through=self.lm)  # the stored set is what the pretrained LM reads
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


def run_loop(
    distiller: Distiller,
    on_step: Callable[[StepReport], None] | None = None,
    on_checkpoint: Callable[[Distiller], None] | None = None,
) -> None:
    """The outer loop, from wherever `distiller` stands (resume) to `settings.steps` or a stall;
    `on_checkpoint` is called every `checkpoint_every` steps."""
    steps, every = distiller.settings.steps, distiller.settings.checkpoint_every
    while distiller.step < steps and not distiller.stopped:
        report = distiller.outer_step()
        if on_step:
            on_step(report)
        if on_checkpoint and distiller.step % every == 0 and distiller.step < steps and not distiller.stopped:
            with distiller.clock("checkpoints"):
                on_checkpoint(distiller)
