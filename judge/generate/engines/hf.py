"""transformers engine: batched `generate` with left padding, grouped by sampling settings.

Used where vLLM is absent, and as the independent second engine of the noise-floor control.
"""

from __future__ import annotations

from collections import defaultdict

from judge.config import EngineOptions
from judge.generate.engines.base import Completion, cuda_available, resolve_dtype
from judge.errors import EngineError
from judge.schemas import SamplingSpec


def torch_dtype(name: str):
    import torch

    if name == "auto":
        return "auto"  # the checkpoint's own dtype
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    except KeyError:
        raise EngineError(f"unknown dtype {name!r}: use auto, bfloat16, float16 or float32") from None


def load_hf_model(model_dir: str, options: EngineOptions):
    """Load (model, device) for generation or scoring, honouring device, dtype and device_map."""
    import torch
    from transformers import AutoModelForCausalLM

    on_gpu = cuda_available()
    device = options.device or ("cuda" if on_gpu else "cpu")
    on_cpu = not options.device_map and device == "cpu"
    kwargs: dict[str, object] = {"dtype": torch_dtype(resolve_dtype(options.dtype, on_cpu=on_cpu)),
                                 "trust_remote_code": options.trust_remote_code}
    if options.device_map:
        kwargs["device_map"] = options.device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    except (OSError, ValueError) as err:
        raise EngineError(f"transformers could not load {model_dir}: {err}") from err
    if not options.device_map:
        model = model.to(device)
    model.eval()
    torch.set_grad_enabled(False)
    first = next(model.parameters()).device
    return model, first


class HFEngine:
    name = "hf"

    def __init__(self, model_dir: str, options: EngineOptions):
        import transformers
        from transformers import AutoTokenizer

        from judge.generate.chat import stop_token_ids

        self.version = transformers.__version__
        self._options = options
        self._tok = AutoTokenizer.from_pretrained(model_dir)
        self._model, self._device = load_hf_model(model_dir, options)
        self.device = str(self._device)
        self._stop = stop_token_ids(self._tok, model_dir)
        pad = self._tok.pad_token_id
        self._pad = int(pad) if pad is not None else (self._stop[0] if self._stop else 0)

    def generate(self, prompts: list[list[int]], sampling: list[SamplingSpec]) -> list[Completion]:
        # group by sampling settings, then batch by similar length to waste little padding
        groups: dict[SamplingSpec, list[int]] = defaultdict(list)
        for i, s in enumerate(sampling):
            groups[s].append(i)
        out: list[Completion | None] = [None] * len(prompts)
        bs = self._options.batch_size
        for spec, idxs in groups.items():
            idxs = sorted(idxs, key=lambda i: len(prompts[i]))
            for start in range(0, len(idxs), bs):
                chunk = idxs[start:start + bs]
                for i, c in zip(chunk, self._generate_batch([prompts[i] for i in chunk], spec)):
                    out[i] = c
        return [c for c in out if c is not None]

    def _generate_batch(self, prompts: list[list[int]], spec: SamplingSpec) -> list[Completion]:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding: prompts end at the same column
            ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[row, width - len(p):] = 1
        kwargs: dict[str, object] = {"max_new_tokens": spec.max_new_tokens, "pad_token_id": self._pad,
                                     "eos_token_id": self._stop or None}
        if spec.temperature > 0:
            torch.manual_seed(spec.seed)
            kwargs.update(do_sample=True, temperature=spec.temperature, top_p=spec.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        gen = self._model.generate(input_ids=ids.to(self._device), attention_mask=mask.to(self._device),
                                   **kwargs)
        new = gen[:, width:].tolist()
        result = []
        stops = set(self._stop)
        for row in new:
            cut = next((j for j, t in enumerate(row) if t in stops), None)
            if cut is not None:
                result.append(Completion(row[:cut + 1], "stop"))  # keep the EOS, as vLLM does
            else:
                # no stop token: the row ran to the limit (padding only ever follows a stop)
                result.append(Completion(row[: spec.max_new_tokens], "length"))
        return result

    def close(self) -> None:
        self._model = None
