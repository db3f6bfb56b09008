"""Build a ~100k-parameter Gemma-3 model and tokenizer, fully offline, for GRPO smoke tests.

Why not a real checkpoint: the examples and tests must run with no network and on two CPU
cores. Why not random weights: a random model never writes ``<answer>`` tags, so every GRPO
reward is zero, the group advantages vanish and loss/grad_norm are all zero - nothing for a
logging system to show. So the build does three things:

1. trains a ~512-token byte-level BPE tokenizer on text from :mod:`gsm_data`, wrapped as a
   transformers fast tokenizer with Gemma's special tokens and chat template;
2. creates ``Gemma3ForCausalLM`` from a tiny ``Gemma3TextConfig`` (sliding + full layers, as
   in real Gemma 3, so the architecture-specific code paths are exercised);
3. runs a short, seeded causal-LM warm-up on prompts plus well-formatted answers, so that
   sampled completions are sometimes well formatted and sometimes correct.

The result is cached in ``out_dir`` behind a build-spec marker; a matching marker means the
directory is reused as is.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

if __package__:  # imported as examples.tiny_gemma
    from . import gsm_data
else:  # run as a script, or imported with examples/ on sys.path
    import gsm_data  # type: ignore[no-redef]

#: Bump whenever the build recipe changes, so old caches are rebuilt rather than reused.
BUILD_VERSION = 1
MARKER_FILE = "gemmalog_build_spec.json"
VOCAB_SIZE = 512
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
)
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

#: Gemma's chat template: no system role (the system prompt is folded into the first user
#: turn), the assistant speaks as ``model``, every turn ends with ``<end_of_turn>``.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _model_spec() -> dict[str, Any]:
    """Architecture hyper-parameters; also recorded in the cache marker."""
    return {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 32,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 64,
        "max_position_embeddings": 512,
    }


def build_spec(seed: int, warmup_steps: int) -> dict[str, Any]:
    """Everything that determines the build's output; a cache is valid only if this matches."""
    return {
        "version": BUILD_VERSION,
        "data_version": gsm_data.DATA_VERSION,
        "seed": seed,
        "warmup_steps": warmup_steps,
        "vocab_size": VOCAB_SIZE,
        "model": _model_spec(),
    }


def build_tokenizer(seed: int = 0) -> PreTrainedTokenizerFast:
    """Train the byte-level BPE and wrap it with Gemma's special tokens and chat template.

    The format tags become whole (non-special) tokens: the answer then fits comfortably in
    GRPO's 32-token completion budget, and ``skip_special_tokens=True`` decoding (what TRL
    does) still keeps them in the text the reward functions see.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(gsm_data.FORMAT_TAGS),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(gsm_data.tokenizer_corpus(4000, seed=seed + 1), trainer)
    tok.add_tokens(
        [AddedToken(tag, special=False, normalized=False) for tag in gsm_data.FORMAT_TAGS]
    )
    # Like Gemma, plain encode() prepends <bos>; chat-template encoding passes
    # add_special_tokens=False, so the template's own bos_token is not doubled.
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", tok.token_to_id("<bos>"))]
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
        padding_side="left",  # decoder-only generation pads on the left
        model_max_length=_model_spec()["max_position_embeddings"],
    )
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return tokenizer


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """Id of a single token (the tokenizer's API also allows lists, hence the check)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int):
        raise TypeError(f"expected one id for {token!r}, got {token_id!r}")
    return token_id


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Gemma3ForCausalLM:
    """Create the randomly initialised tiny Gemma 3 (seeded, so builds are reproducible)."""
    torch.manual_seed(seed)
    pad, bos, eos = (_token_id(tokenizer, t) for t in ("<pad>", "<bos>", "<eos>"))
    end_of_turn = _token_id(tokenizer, "<end_of_turn>")
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=[eos, end_of_turn],
        tie_word_embeddings=True,
        **_model_spec(),
    )
    model = Gemma3ForCausalLM(config)
    # Real Gemma stops generating at <end_of_turn> as well as <eos>; TRL reads these ids.
    model.generation_config.eos_token_id = [eos, end_of_turn]
    model.generation_config.pad_token_id = pad
    model.generation_config.bos_token_id = bos
    return model


def _warmup_examples(
    tokenizer: PreTrainedTokenizerFast, n: int, seed: int
) -> list[tuple[list[int], int]]:
    """Tokenised (prompt + ideal answer) sequences and the prompt length (loss is masked there)."""
    examples = []
    for problem in gsm_data.iter_problems(n, seed=seed + 2):
        prompt = gsm_data.make_prompt(problem.question)
        chat = [*prompt, {"role": "assistant", "content": gsm_data.format_completion(problem)}]
        prompt_text = tokenizer.apply_chat_template(
            prompt, tokenize=False, add_generation_prompt=True
        )
        full_text = tokenizer.apply_chat_template(chat, tokenize=False)
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise RuntimeError(
                "chat template is not prefix-stable; warm-up labels would be misaligned"
            )
        examples.append((full_ids, len(prompt_ids)))
    return examples


def warmup(
    model: Gemma3ForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    *,
    steps: int,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 6e-3,
) -> float:
    """Fit the answer part of formatted examples with plain AdamW; returns the last loss.

    Only answer tokens (including the closing ``<end_of_turn>``) carry loss, so the model learns
    to produce the format and to stop, rather than to predict the fixed system prompt.
    """
    examples = _warmup_examples(tokenizer, n=max(steps * batch_size // 4, batch_size), seed=seed)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 20) * (1 - s / max(steps, 1))
    )
    pad_id = tokenizer.pad_token_id
    model.train()
    loss_value = float("nan")
    for _ in range(steps):
        batch = rng.sample(examples, batch_size)
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        labels = torch.full((batch_size, width), -100, dtype=torch.long)
        for row, (ids, prompt_len) in enumerate(batch):  # right padding: positions start at 0
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        loss_value = loss.item()
    model.eval()  # type: ignore[no-untyped-call]
    return loss_value


def is_complete_build(out_dir: str | Path, spec: dict[str, Any]) -> bool:
    """True if ``out_dir`` holds every saved file and a marker whose spec equals ``spec``."""
    out = Path(out_dir)
    marker = out / MARKER_FILE
    if not marker.is_file() or not all((out / name).is_file() for name in _REQUIRED_FILES):
        return False
    try:
        return bool(json.loads(marker.read_text())["spec"] == spec)
    except (ValueError, KeyError, OSError):
        return False


def _apply_umask(path: Path, *, directory: bool) -> None:
    """Give ``path`` the permissions a plain mkdir/open would have had under the umask."""
    umask = 0o022
    try:  # read it without os.umask(), which would briefly change it for every thread
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except OSError:
        pass
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def build_tiny_gemma(
    out_dir: str | Path, *, seed: int = 0, warmup_steps: int = 300, force: bool = False
) -> Path:
    """Build (or reuse) the tiny Gemma in ``out_dir`` and return its path.

    The build goes into a temporary sibling directory and is moved into place only when
    complete, with the marker written last, so an interrupted or concurrent build never
    leaves a directory that looks valid but is not.
    """
    out = Path(out_dir).expanduser().resolve()
    spec = build_spec(seed, warmup_steps)
    if not force and is_complete_build(out, spec):
        return out

    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        _apply_umask(tmp, directory=True)  # mkdtemp is 0700; the cache may be shared
        tokenizer = build_tokenizer(seed)
        model = build_model(tokenizer, seed)
        final_loss = warmup(model, tokenizer, steps=warmup_steps, seed=seed)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_warmup_loss": final_loss,
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / MARKER_FILE).write_text(json.dumps({"spec": spec, "info": info}, indent=2) + "\n")
        for path in tmp.iterdir():
            _apply_umask(path, directory=False)
        if out.exists():
            if is_complete_build(out, spec) and not force:  # a concurrent build won the race
                return out
            shutil.rmtree(out)
        try:
            os.replace(tmp, out)
        except OSError:  # another process moved its build into place after our check
            if not is_complete_build(out, spec):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def build_info(out_dir: str | Path) -> dict[str, Any]:
    """The informational part of the marker (parameter count, last warm-up loss, build time)."""
    info: dict[str, Any] = json.loads((Path(out_dir) / MARKER_FILE).read_text()).get("info", {})
    return info


def main(argv: list[str] | None = None) -> int:
    """``python examples/tiny_gemma.py OUT_DIR [--force]``: build and report."""
    args = sys.argv[1:] if argv is None else argv
    force = "--force" in args
    paths = [a for a in args if a != "--force"]
    if len(paths) != 1:
        print("usage: python examples/tiny_gemma.py OUT_DIR [--force]", file=sys.stderr)
        return 2
    started = time.perf_counter()
    path = build_tiny_gemma(paths[0], force=force)
    elapsed = time.perf_counter() - started
    info = build_info(path)
    print(f"path:       {path}")
    print(f"parameters: {info.get('parameters')}")
    print(f"warm-up loss: {info.get('final_warmup_loss')}")
    print(f"time:       {elapsed:.2f} s (build itself took {info.get('build_seconds')} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
