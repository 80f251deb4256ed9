"""How a GNN is trained on a set (the gnn and joint protocols' settings and defaults), in a module
that imports no torch, so the CLI can build its options (and answer --help) without loading it."""

from __future__ import annotations

from dataclasses import dataclass

from talk_cli.encode.settings import LORA_ALPHA, LORA_ALPHA_HELP, LORA_DROPOUT, LORA_DROPOUT_HELP, LORA_RANK_HELP, check_lora
from talk_cli.errors import SettingsError
from talk_cli.options import setting

ARCHITECTURES = ("gcn", "sgc", "appnp", "sage", "mlp")
PROTOCOLS = ("gnn", "joint")
# How long each kind of training runs, how often it validates and, joint, the LM's learning rate.
# An epoch of `joint` is one step on the bundle; each of its validations re-encodes every real
# text with the fine-tuned LM. Its LM rate and epochs were chosen on Cora's validation nodes
# (benchmarks/joint_settings.py, docs/evaluate.md): at 2e-5 a few synthetic texts pull the LM away
# within 20 steps. An epoch of the joint full-data reference is a pass over every real training
# node in batches, at the usual fine-tuning rate for BERT-sized encoders. Both joint trainings
# start from a GNN first fitted alone on the pretrained LM's features (`probe_epochs`, trained as
# the gnn protocol trains), so that fine-tuning does not begin with a random GNN's gradients
# pulling the LM about.
TRAINING_DEFAULTS = {
    ("gnn", False): {"epochs": 200, "eval_every": 1},
    ("gnn", True): {"epochs": 200, "eval_every": 1},
    ("joint", False): {"epochs": 100, "eval_every": 20, "lm_lr": 5e-6, "probe_epochs": 200},
    ("joint", True): {"epochs": 3, "eval_every": 1, "lm_lr": 2e-5, "probe_epochs": 200},
}


def training_defaults(protocol: str, full: bool) -> dict[str, int]:
    return TRAINING_DEFAULTS[protocol, full]


@dataclass(frozen=True)
class EvalSettings:
    architecture: str = setting("gcn", "The GNN trained on the set.", flag="--model-type", choices=ARCHITECTURES)
    runs: int = setting(10, "Independent training runs (seeds seed..seed+runs-1).")
    epochs: int = setting(
        TRAINING_DEFAULTS["gnn", False]["epochs"], "Training epochs per run (joint: steps on the bundle; joint --full: passes over the training nodes)."
    )
    eval_every: int = setting(TRAINING_DEFAULTS["gnn", False]["eval_every"], "Epochs between validations (the best is kept).")
    lr: float = setting(0.01, "Adam learning rate of the GNN.")
    lm_lr: float = setting(TRAINING_DEFAULTS["joint", False]["lm_lr"], "Adam learning rate of the LM (joint protocol).")
    finetune_lr: float = setting(
        0.01,
        "Joint protocol: Adam learning rate of the probed GNN while it is fine-tuned together with the LM "
        "(--lr trains the probe, and the GNN throughout when there is no probe).",
    )
    probe_epochs: int = setting(
        TRAINING_DEFAULTS["joint", False]["probe_epochs"],
        "Joint protocol: epochs of the GNN alone on the pretrained LM's features before LM + GNN are fine-tuned "
        "together from its best state on validation, which stays a candidate (0: start from a random GNN).",
    )
    refit: bool = setting(
        True,
        "Joint protocol: each check classifies with a fresh GNN fitted, as the probe is, on the current LM's features, "
        "rather than with the GNN fine-tuned alongside the LM (needs a probe: the refit trains as the probe does).",
        flag="--refit/--no-refit",
    )
    weight_decay: float = setting(5e-4, "Adam weight decay.")
    hidden: int = setting(256, "Hidden units of the GNN.")
    dropout: float = setting(0.5, "Dropout of the GNN.")
    batch_size: int = setting(32, "Target nodes per step of the joint full-data reference.")
    lora_rank: int = setting(0, "Joint protocol: " + LORA_RANK_HELP)
    lora_alpha: float = setting(LORA_ALPHA, "Joint protocol: " + LORA_ALPHA_HELP)
    lora_dropout: float = setting(LORA_DROPOUT, "Joint protocol: " + LORA_DROPOUT_HELP)
    seed: int = setting(0, "Seed of the first run.")

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise SettingsError(f"--model-type must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if min(self.runs, self.epochs, self.eval_every, self.batch_size) < 1:
            raise SettingsError("--runs, --epochs, --eval-every and --batch-size must be at least 1")
        if self.probe_epochs < 0:
            raise SettingsError(f"--probe-epochs must not be negative, got {self.probe_epochs}")
        if self.hidden < 1:
            raise SettingsError(f"--hidden must be at least 1, got {self.hidden}")
        if not self.lr > 0:
            raise SettingsError(f"--lr must be positive, got {self.lr}")
        if self.finetune_lr < 0:
            raise SettingsError(f"--finetune-lr must not be negative, got {self.finetune_lr} (0 keeps the probed GNN as it is)")
        if self.lm_lr < 0 or self.weight_decay < 0:
            raise SettingsError("--lm-lr and --weight-decay must not be negative (--lm-lr 0 keeps the LM as it is)")
        if not 0 <= self.dropout < 1:
            raise SettingsError(f"--dropout must be in [0, 1), got {self.dropout}")
        check_lora(self.lora_rank, self.lora_alpha, self.lora_dropout)

    @property
    def joint_gnn_lr(self) -> float:
        """The GNN's Adam rate while it is fine-tuned with the LM: its own after a probe, since a fresh
        Adam's first steps move every weight by about its rate whatever the gradient (docs/evaluate.md
        measures slower ones); without a probe there is nothing to keep, and --lr trains it throughout."""
        return self.finetune_lr if self.probe_epochs else self.lr

    @property
    def refits(self) -> bool:
        """Whether a joint check fits a fresh GNN: the refit is a probe, so there must be one."""
        return self.refit and self.probe_epochs > 0
