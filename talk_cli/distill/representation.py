"""What the outer loop learns for the synthetic nodes' features. Each representation is a small
object the loop drives through four calls:

- `features(through=None)`: X_s [n_syn, h], without autograd (token sequences read through the LM
  `through` instead of the one the loop reads them through, e.g. the pretrained LM for the bundle);
- `inject(grad)`: put ∂loss/∂X_s into the gradients of its parameters (`grad` is the whole
  batch's, the same on every rank under torchrun);
- `parameters()`: what the optimiser updates;
- `state_dict()` / `load_state_dict()`: the learned tensors, for the best copy and checkpoints.

Both also carry the token-embedding sequences a bundle stores (`token_embeddings`, `mask`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from talk_cli import distributed
from talk_cli.encode.lm import LanguageModel, encode_embeddings

# Adam's moment decays for the inversion: with these shorter memories than torch's (0.9, 0.999)
# the inversion reaches its cosine in about a third fewer steps on arxiv_2023 and demo, and gets
# closer within Cora's 100, at the same mean GCN validation over three seeds
# (docs/logs/method-evidence.md, "The inversion's Adam forgets faster").
INVERSION_BETAS = (0.8, 0.9)
# The inversion's Adam rate, as a multiple of the token loop's `lr`: with the loss below, twice the
# rate gets the inverted set's GCN validation up sooner on Cora with both LMs (docs/method.md, "What limits
# the inversion").
INVERSION_LR_SCALE = 2


def inversion_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per node: the squared error relative to the target's squared norm, plus one minus the
    cosine. The relative error weighs every node alike whatever its norm, and the cosine term pulls
    the direction first; with the plain squared error, the LM's large shared component took most of
    the early steps (docs/method.md)."""
    cosine = torch.nn.functional.cosine_similarity(out, target)
    return (out - target).pow(2).sum(1) / target.pow(2).sum(1).clamp_min(1e-12) + 1 - cosine


class TokenSequences:
    """TaLK: synthetic texts as learnable input-embedding sequences E, read through the frozen
    LM, X_s = pool(LM(E)). Gradients reach E by batch-wise injection: one chunk of synthetic
    nodes' LM graph is alive at a time, so memory does not grow with n_syn.

    Under torchrun each rank runs the LM on chunks rank, rank + N, ... and the ranks sum their
    results: the LM pass is the cost that does not shrink with the real graph's sharding, and a
    chunk's features and gradient depend on that chunk alone, so the sums equal one process's."""

    def __init__(self, embeddings: torch.Tensor, mask: torch.Tensor, lm: LanguageModel, chunk: int):
        lm.require_inputs_embeds("talk")
        self.embeddings = torch.nn.Parameter(embeddings)
        self.mask = mask
        # The LM the loop reads E through: `lm`, or the inner loop's tuned copy while it runs.
        self.read_through: Callable[[], LanguageModel] = lambda: lm
        every_chunk = [slice(start, start + chunk) for start in range(0, embeddings.shape[0], chunk)]
        self.chunks = every_chunk[distributed.rank() :: distributed.world_size()]  # this rank's

    @property
    def token_embeddings(self) -> torch.Tensor:
        return self.embeddings.detach()

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.embeddings]

    def features(self, through: LanguageModel | None = None) -> torch.Tensor:
        lm = through or self.read_through()
        out = torch.zeros(self.embeddings.shape[0], lm.identity.hidden_size, device=self.embeddings.device)
        with torch.no_grad():
            for part in self.chunks:
                out[part] = encode_embeddings(lm, self.embeddings[part], self.mask[part]).float()
        return distributed.sum_over_ranks(out)

    def inject(self, grad: torch.Tensor) -> None:
        self.backward_by_chunk(lambda part, out: out.backward(grad[part].to(out.dtype)))

    def fit(
        self,
        target: torch.Tensor,
        steps: int,
        lr: float,
        cosine: float = 0.0,
        on_step: Callable[[int, float, torch.Tensor], bool | None] | None = None,
        betas: tuple[float, float] = INVERSION_BETAS,
    ) -> tuple[int, float]:
        """Feature-to-token inversion: up to `steps` Adam steps (moment decays `betas`) on E that
        bring pool(LM(E)) towards `target` [n_syn, h] (`inversion_loss`), stopping early once the
        mean cosine similarity of the two reaches `cosine` (0: never). One LM pass per step, chunk
        by chunk as in the outer loop, so memory stays flat and ranks share the work.
        `on_step(step, loss, features)` hears each step's loss (summed over every rank's chunks)
        and the pooled features that pass measured (all nodes, of E before the step's update); a
        true answer ends the fit there (the caller's validation has what it wanted).
        Returns the steps taken and the last mean cosine measured (of E before the last step's
        update)."""
        optimizer = torch.optim.Adam([self.embeddings], lr=lr, betas=betas)
        step, mean_cosine = 0, 0.0
        for step in range(1, steps + 1):
            optimizer.zero_grad()
            # [loss, sum of cosines], summed where computed: no sync per chunk
            measured = torch.zeros(2, dtype=torch.float64, device=self.embeddings.device)
            features = torch.zeros(self.embeddings.shape[0], target.shape[1], device=self.embeddings.device)

            def backward(part: slice, out: torch.Tensor) -> None:
                loss = inversion_loss(out.float(), target[part]).sum()
                loss.backward()
                measured[0] += loss.detach()
                measured[1] += torch.nn.functional.cosine_similarity(out.detach().float(), target[part]).sum()
                features[part] = out.detach().float()

            self.backward_by_chunk(backward)
            error, total_cosine = distributed.sum_over_ranks(measured).tolist()  # on every rank: a collective
            mean_cosine = total_cosine / self.embeddings.shape[0]
            stop = on_step(step, error, distributed.sum_over_ranks(features)) if on_step else False
            if stop or (cosine and mean_cosine >= cosine):  # close enough: this step's update is not needed
                break
            optimizer.step()
        return step, mean_cosine

    def backward_by_chunk(self, backward: Callable[[slice, torch.Tensor], None]) -> None:
        """Run the LM on this rank's chunks with autograd, let `backward(chunk, pooled)`
        accumulate E's gradient, and sum the gradient over ranks."""
        lm = self.read_through()
        for part in self.chunks:
            backward(part, encode_embeddings(lm, self.embeddings[part], self.mask[part]))
        if self.embeddings.grad is None:  # this rank holds no chunk
            self.embeddings.grad = torch.zeros_like(self.embeddings)
        distributed.sum_over_ranks(self.embeddings.grad)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"embeddings": self.embeddings.detach().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.embeddings.copy_(state["embeddings"])


class FreeFeatures:
    """The structure-based-NTK condensation that TaLK extends (`kernel-features`): the feature
    vectors themselves are learned, with no LM in the loop. They start from the seed nodes' real
    features; the bundle's token embeddings keep the seed texts they came from."""

    def __init__(self, vectors: torch.Tensor, token_embeddings: torch.Tensor, mask: torch.Tensor):
        self.vectors = torch.nn.Parameter(vectors)
        self.token_embeddings = token_embeddings
        self.mask = mask

    def parameters(self) -> list[torch.nn.Parameter]:
        return [self.vectors]

    def features(self, through: LanguageModel | None = None) -> torch.Tensor:
        return self.vectors.detach()  # no LM reads them

    def inject(self, grad: torch.Tensor) -> None:
        self.vectors.grad = grad.to(self.vectors.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"vectors": self.vectors.detach().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.vectors.copy_(state["vectors"])


Representation = TokenSequences | FreeFeatures
