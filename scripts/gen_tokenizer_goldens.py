#!/usr/bin/env python3
"""Builds the tokenizer test corpus and the expected ids/text from Hugging Face `tokenizers`.

Usage: .venv-ref/bin/python scripts/gen_tokenizer_goldens.py [--shared ../shared] [--out tests/data/tokenizer]

Writes corpus.jsonl (one {"text": ...} per line, seeded so reruns are identical) and, for every
tokenizer in shared/tokenizers/* and shared/models/tinystories-656k, <name>.jsonl:
  line 1: {"tokenizer": name, "path": ..., "prefix": [...], "suffix": [...]}  (what
          add_special_tokens wraps around the ids, derived from encode("x"))
  then one line per corpus string, same order:
    "ids":  encode(text, add_special_tokens=True)
    "nsp":  encode(text, add_special_tokens=False), only when it is not ids minus prefix/suffix
    "dec":  decode(ids, skip_special_tokens=True) as transformers' AutoTokenizer gives it (what vLLM
            and its users see: every special token skipped, see skip_special_decode), only when
            it differs from text
    "deck": decode(ids, skip_special_tokens=False), only when it differs from text
The compaction keeps the goldens small; the C++ test expands it the same way.
Transformers' AutoTokenizer is run as a cross-check and disagreements are printed.
"""
import argparse
import json
import os
import random
import sys

from tokenizers import Tokenizer

SEED = 20261125

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "It's a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "I'm sure they'll say we'd've done it, but you're wrong; he's not THAT'S IT. They've, we'll, I'd.",
    "Dr. Smith arrived at 10:30 a.m. on Jan. 5th, 2024 -- exactly as planned (or so he said).",
    "\"Hello,\" she said. 'Goodbye,' he replied... and then? Nothing!",
    "Mr. O'Neil's dog can't swim; the dogs' owners won't let them.",
    "e-mail, co-operate, well-known, state-of-the-art, U.S.A., e.g., i.e., etc.",
    "HELLO WORLD! ThIs Is MiXeD CaSe. camelCaseWord snake_case_word kebab-case-word",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
]
WORDS = ("the of and to in is was he for it with as his on be at by had are but from or have an they which "
         "one you were her all she there would their we him been has when who will more no if out so said what "
         "up its about into than them can only other new some could time these two may then do first any my now "
         "such like our over man me even most made after also did many before must through back years where much "
         "your way well down should because each just those people how too little state good very make world still "
         "own see men work long get here between both life being under never day same another know while last "
         "tokenizer transformer attention gradient embedding inference batch kernel cache latency throughput").split()
CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "const x = {a: 1, 'b': [2, 3], \"c\": null}; // comment\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name ORDER BY 2 DESC;",
    "<html><body><div class=\"main\">Hi &amp; bye</div></body></html>",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares\nprint(x)\n",
    "fn main() -> Result<(), Box<dyn Error>> {\n    let v: Vec<u32> = (0..10).collect();\n    Ok(())\n}",
    "$ ls -la /usr/local/bin | grep -E '^d' && echo \"done\" > /tmp/out.txt 2>&1",
    "{\"ids\": [1, 2, 3], \"text\": \"a\\tb\", \"nested\": {\"k\": true}}",
    "    return self._cache.get(key, default)\r\n",
    "if (a != b && c <= d || e >= f) { x <<= 2; y >>= 3; z ^= ~w; }",
]
UNICODE = [
    "你好，世界！今天天气很好。", "我们在北京大学学习人工智能和机器学习。", "日本語のテキストです。東京は大きい都市です。",
    "ひらがな カタカナ 漢字 ｶﾀｶﾅ", "안녕하세요, 세계! 한국어 문장입니다.", "مرحبا بالعالم، هذه جملة باللغة العربية.",
    "שלום עולם", "Привет, мир! Это русский текст.", "Γειά σου Κόσμε", "नमस्ते दुनिया, यह हिंदी है।",
    "สวัสดีชาวโลก", "Tiếng Việt có dấu: Đây là một câu.", "Ærø Øresund Åland straße ß ẞ", "naïve café résumé coöperate",
    "😀😃😄😁 👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 ❤️ ✨", "e\u0301 a\u0300 o\u0308 n\u0303 (decomposed) é à ö ñ (composed)",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357L\u0310G\u0352O",
    "\u1100\u1161\u11a8 (conjoining jamo) 각", "ﬁ ﬂ ﬀ Ｆｕｌｌｗｉｄｔｈ ①②③ ½ ¼ Ⅻ ²³",
    "\u00a0nbsp\u00a0 \u2003em\u2003 \u3000ideographic\u3000 \u2028line\u2029para \u0085nel \u180emvs \u200bzwsp \ufeffbom",
    "'ſ 'S 'K 'K İstanbul ıi ǅ ǈ ǋ", "\U0001d400\U0001d401 \U00010348 \U0001f9d1\u200d\U0001f52c", "\u202eRTL override\u202c \u200f\u200e",
    "math: ∀x∈ℝ, ∃y: x²+y²≥0 ⇒ √(x²) = |x| ≈ π ≠ ∞", "currency: $100 €50 £30 ¥1000 ₹500 ₿0.5",
]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
           "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<think>", "</think>",
           "<tool_call>", "<|start_story|>", "<|end_story|>", "<|fim_prefix|>", "<|reserved_special_token_5|>",
           "[INST]", "<0x41>", "<pad>"]
ESCAPES = ["\\xff", "\\xfe\\xff", "\\x80\\x81", "\\u0000", "\\ud800", "%FF%FE", "&#xFFFD;", "\ufffd", "\ufffd\ufffd"]
WS = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\n \n", "\t \t", "    ", "\n\n\n\n", "\r"]


def rand_unicode(rng, n):
    """Random code points from blocks that real text uses (no surrogates)."""
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x23FF),
              (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1F6FF),
              (0x1F900, 0x1F9FF), (0x10000, 0x1007F)]
    out = []
    for _ in range(n):
        lo, hi = rng.choice(blocks)
        out.append(chr(rng.randint(lo, hi)))
    return "".join(out)


def rand_words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build_corpus():
    rng = random.Random(SEED)
    c = ["", " ", "  ", "\n", "\t", "a", "A", " a", "a ", "0", "12", "123", "1234", "hello", " hello", "Hello world"]
    c += PROSE + CODE + UNICODE + SPECIAL + ESCAPES + WS
    for _ in range(150):  # prose from the word list with punctuation and case
        s = rand_words(rng, rng.randint(1, 40))
        if rng.random() < 0.5:
            s = s.capitalize() + rng.choice([".", "!", "?", "...", ",", ";", ":"])
        c.append(s)
    for _ in range(100):  # whitespace runs between words
        parts = []
        for _ in range(rng.randint(1, 10)):
            parts.append(rng.choice(WORDS + ["x", "1", "!", "你好", "é"]))
            parts.append("".join(rng.choice(WS) for _ in range(rng.randint(1, 4))))
        if rng.random() < 0.5:
            parts.insert(0, rng.choice(WS))
        c.append("".join(parts))
    for _ in range(100):  # numbers
        kind = rng.randint(0, 5)
        if kind == 0:
            s = str(rng.randint(0, 10 ** rng.randint(1, 30)))
        elif kind == 1:
            s = f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 8)}f}"
        elif kind == 2:
            s = f"{rng.randint(0, 10**9):,}"
        elif kind == 3:
            s = " ".join(str(rng.randint(0, 9999)) for _ in range(rng.randint(2, 12)))
        elif kind == 4:
            s = f"v{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}-rc{rng.randint(1, 5)} on 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        else:
            s = rng.choice(["٣٤٥", "१२३", "一二三", "１２３", "Ⅳ", "½"]) + str(rng.randint(0, 999))
        c.append(s)
    for _ in range(120):  # random unicode soup
        c.append(rand_unicode(rng, rng.randint(1, 60)))
    for _ in range(80):  # special-token text embedded in prose, with and without spaces
        s = rng.choice(SPECIAL)
        pre, post = rand_words(rng, rng.randint(0, 4)), rand_words(rng, rng.randint(0, 4))
        sep1, sep2 = rng.choice(["", " ", "\n", "  "]), rng.choice(["", " ", "\n", "  "])
        c.append(pre + sep1 + s + sep2 + post + (rng.choice(SPECIAL) if rng.random() < 0.3 else ""))
    c.append("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n")
    c.append("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>")
    c.append("<s>[INST] What is 2+2? [/INST] 4</s><s>[INST] and 3+3? [/INST]")
    c.append("<|start_story|>Once upon a time<|end_story|>")
    for _ in range(60):  # escapes and byte-looking text
        c.append("".join(rng.choice(ESCAPES + ["abc", " ", "\\", "x", "0x"]) for _ in range(rng.randint(1, 8))))
    for n in [100, 300, 1000, 3000]:  # very long words
        c.append("a" * n)
        c.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n)))
    c.append("Pneumonoultramicroscopicsilicovolcanoconiosis" * 20)
    c.append("9" * 500)
    c.append(" " * 200)
    c.append("\n" * 100)
    c.append("你" * 300)
    c.append("😀" * 100)
    c.append("-" * 150 + "=" * 150)
    frags = PROSE + CODE + UNICODE + SPECIAL + ESCAPES + WS + WORDS
    while len(c) < 1100:  # mixed
        c.append("".join(rng.choice(frags) + rng.choice(["", " ", "\n"]) for _ in range(rng.randint(2, 8))))
    return c


# Variants of real tokenizers that exercise the parts no shipped file uses (Metaspace
# pre-tokenizer/decoder as in transformers' legacy=False Llama conversion; Digits, Sequence and
# ByteLevel add_prefix_space). The patch replaces top-level keys of the base tokenizer.json; it is
# stored in the golden's header so the C++ test builds the same file.
VARIANTS = {
    "tinyllama-metaspace": ("tokenizers/tinyllama", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}}),
    "mistral-metaspace-split": ("tokenizers/mistral", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
            {"type": "ByteFallback"}, {"type": "Fuse"}]}}),
    "gpt2-digits-prefix": ("tokenizers/gpt2", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}}),
}


def load_variant(shared, base, patch):
    d = json.load(open(os.path.join(shared, base, "tokenizer.json"), encoding="utf-8"))
    d.update(patch)
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "nanovllm-variant-tokenizer.json")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(d, f)
    return load_tokenizer_file(tmp)


def tokenizer_dirs(shared):
    out = []
    tdir = os.path.join(shared, "tokenizers")
    for name in sorted(os.listdir(tdir)):
        out.append((name, os.path.join(tdir, name)))
    out.append(("tinystories-656k", os.path.join(shared, "models", "tinystories-656k")))
    return out


def load_tokenizer(path):
    return load_tokenizer_file(os.path.join(path, "tokenizer.json"))


def load_tokenizer_file(file):
    """Tokenizer.from_file, or, for files whose string merges are ambiguous because tokens
    contain spaces (TinyLlama's Llama-2 vocabulary: "   " is " " + " "), the same file with
    each such merge split at the only point where both halves and their join are in the vocab
    (the rule the C++ loader applies). Returns (tokenizer, number of merges fixed)."""
    try:
        return Tokenizer.from_file(file), 0
    except Exception:
        pass
    d = json.load(open(file, encoding="utf-8"))
    vocab, fixed, merges = d["model"]["vocab"], 0, []
    for m in d["model"]["merges"]:
        if isinstance(m, str) and m.count(" ") != 1:
            cuts = [i for i in range(1, len(m) - 1) if m[i] == " " and m[:i] in vocab and m[i + 1:] in vocab
                    and m[:i] + m[i + 1:] in vocab]
            if len(cuts) != 1:
                raise SystemExit(f"{file}: merge {m!r} is ambiguous")
            m, fixed = [m[:cuts[0]], m[cuts[0] + 1:]], fixed + 1
        elif isinstance(m, str):
            m = m.split(" ")
        merges.append(m)
    d["model"]["merges"] = merges
    return Tokenizer.from_str(json.dumps(d)), fixed


def sentencepiece_check(path, tok, corpus):
    """Counts strings where sentencepiece (tokenizer.model, when present) disagrees."""
    model = os.path.join(path, "tokenizer.model")
    if not os.path.exists(model):
        return ""
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    diff = sum(sp.encode(t) != tok.encode(t, add_special_tokens=False).ids for t in corpus)
    return f"; sentencepiece disagrees on {diff} of {len(corpus)} (special-token text and leading spaces)"


def wrap_of(tok):
    """The ids add_special_tokens puts before and after the text's ids."""
    with_sp = tok.encode("x", add_special_tokens=True).ids
    plain = tok.encode("x", add_special_tokens=False).ids
    for i in range(len(with_sp) - len(plain) + 1):
        if with_sp[i:i + len(plain)] == plain:
            return with_sp[:i], with_sp[i + len(plain):]
    raise SystemExit("cannot find the post-processor's wrapping")


def special_ids(tok):
    return {i for i, t in tok.get_added_tokens_decoder().items() if t.special}


def skip_special_decode(tok, ids, auto=None):
    """decode(ids, skip_special_tokens=True) with every special added token skipped, whatever its
    `normalized` flag. Bare `tokenizers` keeps a normalized special token (TinyStories'
    <|end_story|>: it looks tokens up by their normalized text); transformers registers the
    special tokens again when it loads the file, so AutoTokenizer (and vLLM, which decodes with
    it) skips them all. The rule is: drop the special ids, decode the rest. Where AutoTokenizer
    loads the file (`auto`), it is the reference, and it must agree with the rule."""
    ref = tok.decode([i for i in ids if i not in special_ids(tok)], skip_special_tokens=False)
    if auto is not None:
        got = auto.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if got != ref:
            raise SystemExit(f"AutoTokenizer's skip_special_tokens decode differs from the rule: {got!r} != {ref!r}")
    return ref


def auto_tokenizer(path):
    try:
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:  # TinyLlama's vocabulary: transformers cannot load it
        print(f"note: AutoTokenizer cannot load {path} ({type(e).__name__}); skip_special_tokens by the rule alone",
              file=sys.stderr)
        return None


def cross_check(path, tok, corpus):
    """Counts strings where transformers' AutoTokenizer disagrees with `tokenizers`."""
    try:
        from transformers import AutoTokenizer
        at = AutoTokenizer.from_pretrained(path)
    except Exception as e:  # transformers is a cross-check only
        return f"AutoTokenizer unavailable: {e}"
    diff_ids = diff_dec = 0
    for text in corpus:
        for sp in (True, False):
            if at.encode(text, add_special_tokens=sp) != tok.encode(text, add_special_tokens=sp).ids:
                diff_ids += 1
        ids = tok.encode(text).ids
        if at.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) != tok.decode(ids, skip_special_tokens=False):
            diff_dec += 1
    return f"AutoTokenizer disagrees on {diff_ids} encodes, {diff_dec} decodes keeping special tokens (of {2 * len(corpus)}, {len(corpus)})"


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "tokenizer"))
    ap.add_argument("--no-cross-check", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus = build_corpus()
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for text in corpus:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    jobs = [(name, path, None) for name, path in tokenizer_dirs(args.shared)]
    jobs += [(name, os.path.join(args.shared, base), patch) for name, (base, patch) in VARIANTS.items()]
    for name, path, patch in jobs:
        tok, fixed = load_tokenizer(path) if patch is None else load_variant(args.shared, os.path.relpath(path, args.shared), patch)
        prefix, suffix = wrap_of(tok)
        auto = None if patch is not None or args.no_cross_check else auto_tokenizer(path)
        rel = os.path.relpath(path, args.shared)
        header = {"tokenizer": name, "path": rel, "prefix": prefix, "suffix": suffix, "merges_fixed": fixed}
        if patch is not None:
            header["patch"] = patch
        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            f.write(json.dumps(header, ensure_ascii=False) + "\n")
            for text in corpus:
                ids = tok.encode(text, add_special_tokens=True).ids
                nsp = tok.encode(text, add_special_tokens=False).ids
                row = {"ids": ids}
                if prefix + nsp + suffix != ids:
                    row["nsp"] = nsp
                dec, deck = skip_special_decode(tok, ids, auto), tok.decode(ids, skip_special_tokens=False)
                if dec != text:
                    row["dec"] = dec
                if deck != text:
                    row["deck"] = deck
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        note = "" if args.no_cross_check or patch else cross_check(path, tok, corpus) + sentencepiece_check(path, tok, corpus)
        note += f"; {fixed} ambiguous merges fixed" if fixed else ""
        print(f"{name}: {len(corpus)} strings; {note}", file=sys.stderr)


if __name__ == "__main__":
    main()
