#!/usr/bin/env python3
"""tools/golden/gen_tokenizers.py - tokenizer parity fixtures for tests/test_golden_tokenizer.c.

Trains small tokenizers with HF `tokenizers` (pinned 0.20.3) on text this script generates,
writes their tokenizer.json files, a deterministic test corpus and HF's encodings/decodings
of every corpus line.  Everything is seeded, so a rerun rewrites identical files.

Outputs (tests/golden/tokenizer/):
  llama2_legacy.json   BPE byte_fallback, normalizer Sequence[Prepend, Replace], no pre-tokenizer
  llama2_meta.json     same model, no normalizer, Metaspace(prepend_scheme first, split false)
  llama2_always.json   same model, Metaspace(prepend_scheme always, split true)
  llama3.json          byte-level BPE, Split(regex, Isolated) + ByteLevel, ignore_merges true
  corpus.bin           "ETTC" u32 version=1, u32 n, then n x (u32 len, bytes)  (UTF-8 lines)
  <name>.expect.bin    "ETTE" u32 version=1, u32 n, u32 npre, u32 pre[npre], u32 nsuf,
                       u32 suf[nsuf] (ids the post-processor adds around a single sequence),
                       then per line: u32 nids, u16 ids[nids] (encode, add_special_tokens=False),
                       u8 flags; bit0 clear -> u64 FNV-1a hash of the UTF-8 bytes of
                       decode(skip_special=False) (set: it equals the line); bit1 clear -> u64
                       FNV-1a of decode(skip_special=True) (set: equals the no-skip decode).
All integers little-endian.
"""
import json
import os
import random
import struct
import sys

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "tokenizer")
PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
       r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the a an of to and in is it that was for on are with as his they be at one have this "
         "from or had by word but what some we can out other were all there when up use your how "
         "said each she which do their time if will way about many then them write would like so "
         "these her long make thing see him two has look more day could go come did number sound "
         "no most people my over know water than call first who may down side been now find any "
         "new work part take get place made live where after back little only round man year came "
         "show every good me give our under name very through just form sentence great think say "
         "help low line differ turn cause much mean before move right boy old too same tell does "
         "happy sad angry surprised fear disgust neutral contempt face emotion smile frown brow "
         "eye mouth cheek raised lowered expression intensity valence arousal action unit "
         "image video frame describe analyze facial affective behavior instruction tuning").split()
CODE = ["def f(x):\n    return x + 1", "for (int i = 0; i < n; i++) { sum += a[i]; }",
        "if x == None: print('none')", "let v: Vec<u32> = vec![1, 2, 3];",
        "#include <stdio.h>", "x = {\"key\": [1, 2.5, -3e10], 'k2': null}",
        "while(true){break;}", "SELECT * FROM t WHERE id >= 42;", "a->b->c = &d[0];",
        "    \treturn self._cache.get(key, default)", "https://example.com/path?q=1&r=2#frag",
        "C:\\Users\\name\\file.txt", "sha256: 9f86d081884c7d659a2feaa0c55ad015"]
EXOTIC = ["😀", "😂👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "中文字符", "日本語のテキスト", "한국어", "你好，世界！",
          "café", "naïve", "résumé", "Ångström", "e\u0301", "a\u0308o\u0308", "ﬁ ﬆ ſ",
          "Привет, мир", "Ёжик в тумане", "مرحبا بالعالم", "שלום", "ελληνικά", "हिन्दी",
          "ไทย", "\u00a0", "\u2003", "\u3000", "\u200b", "\u2028", "\ufeff", "ǅ", "Ⅻ", "½", "²",
          "٣٤٥", "١٢", "\u0660", "𝔘𝔫𝔦", "\U0001F600\U0001F601", "Ⓐⓑ", "\x7f", "\x01", "\x00",
          "̈", "ꙮ", "𐍈", "I'm", "you're", "WE'VE", "it'S", "they'LL", "she'd", "'ſ", "Don't"]
SPECIAL2 = ["<s>", "</s>", "<unk>", "<image>", "<video>", "[FACE]", "hello_world"]
SPECIAL3 = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|reserved_special_token_0|>", "<|note|>", "<|left|>"]


def sentence(r):
    n = r.randint(2, 9)
    ws = [r.choice(WORDS) for _ in range(n)]
    if r.random() < 0.3:
        ws[0] = ws[0].capitalize()
    s = " ".join(ws)
    if r.random() < 0.3:
        s += r.choice([".", "!", "?", ",", ";", ":", "..."])
    return s


def number(r):
    k = r.random()
    if k < 0.3:
        return str(r.randint(0, 10 ** r.randint(1, 12)))
    if k < 0.6:
        return "%.*f" % (r.randint(1, 4), r.uniform(-1000, 1000))
    return r.choice(["1,000,000", "3.14159", "2024-05-09", "12:30:45", "+1 (555) 010-9999",
                     "0x1F", "1e-5", "50%", "$12.99"])


def training_text(r, n):
    out = []
    for _ in range(n):
        k = r.random()
        if k < 0.6:
            out.append(sentence(r))
        elif k < 0.75:
            out.append(sentence(r) + " " + number(r))
        elif k < 0.92:
            out.append(r.choice(CODE))
        else:
            out.append(r.choice(EXOTIC[:20]) + " " + sentence(r))
    return out


WS = [" ", "  ", "   ", "\n", "\n\n", "\t", " \n", "\r\n", "\t\t", " \t ", "\n \n", "\r"]


def corpus_line(r, specials):
    parts = []
    for _ in range(r.randint(1, 4)):
        k = r.random()
        if k < 0.35:
            parts.append(sentence(r))
        elif k < 0.45:
            parts.append(number(r))
        elif k < 0.55:
            parts.append(r.choice(CODE))
        elif k < 0.72:
            parts.append(r.choice(EXOTIC))
        elif k < 0.85:
            parts.append(r.choice(specials))
        elif k < 0.92:
            parts.append(r.choice(WORDS) + r.choice(specials) + r.choice(WORDS))
        else:
            parts.append("".join(r.choice("abcXYZ019 .,!?'\"-_()[]{}<>|/\\@#$%^&*~`+=;:\t\n")
                                 for _ in range(r.randint(1, 12))))
    out = ""
    for p in parts:
        out += p + (r.choice(WS) if r.random() < 0.3 else " ")
    k = r.random()
    if k < 0.1:
        out = r.choice(WS) + out
    elif k < 0.2:
        out = out.rstrip()
    elif k < 0.25:
        out = out.strip()
    return out


def corpus(r, n):
    lines = ["", " ", "  ", "\n", "\t", "\r\n", " \n ", "a", "▁", "▁▁x", "hello", " hello",
             "  hello", "hello ", "<s>", "<s>hello", " <s> ", "<image>", "x<image>y",
             " <image> ", "<video>", "  <video>  ", "[FACE]", "a[FACE]b", " [FACE]  x",
             "hello_world", "say hello_world now", "xhello_world", "hello_worldx",
             "<|begin_of_text|>", "<|eot_id|>x", "a <|left|> b", "a<|left|>b", "<|note|>",
             "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
             "I'm here, you're there, WE'VE won, it'S ok, they'LL go, she'd do, 'ſ",
             "1234567 12 1 123", "    leading four", "trailing four    ", "a\n\n\n\nb",
             "tabs\t\t\there", "\u00a0nbsp\u00a0", "😀😀😀", "e\u0301\u0301\u0301",
             "<0x41> <0x0A>", "<unk>", "</s>", "unk <unk> in text", "\x00\x01\x02"]
    sp = SPECIAL2 + SPECIAL3
    while len(lines) < n:
        lines.append(corpus_line(r, sp))
    return lines


def add_byte_tokens(tok_json):
    """Insert <0x00>..<0xFF> after the specials (ids 3..258), as in LLaMA's vocab."""
    d = json.loads(tok_json)
    vocab = d["model"]["vocab"]
    items = sorted(vocab.items(), key=lambda kv: kv[1])
    head = [k for k, v in items if v < 3]
    rest = [k for k, v in items if v >= 3]
    byte_toks = ["<0x%02X>" % b for b in range(256)]
    new = head + byte_toks + [k for k in rest if k not in byte_toks]
    d["model"]["vocab"] = {k: i for i, k in enumerate(new)}
    for t in d["added_tokens"]:
        t["id"] = d["model"]["vocab"][t["content"]]
    return json.dumps(d, ensure_ascii=False)


def build_llama2(train):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=1700, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=120, show_progress=False)
    tok.train_from_iterator(train, trainer)
    tok = Tokenizer.from_str(add_byte_tokens(tok.to_str()))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken("<image>", special=True, normalized=False),
                            AddedToken("<video>", special=True, normalized=False, lstrip=True,
                                       rstrip=True)])
    tok.add_tokens([AddedToken("[FACE]", special=False, normalized=True, rstrip=True),
                    AddedToken("hello_world", special=False, normalized=False,
                               single_word=True)])
    variants = {}
    t = Tokenizer.from_str(tok.to_str())
    t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    t.pre_tokenizer = None
    variants["llama2_legacy"] = t
    t = Tokenizer.from_str(tok.to_str())
    t.normalizer = None
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                               split=False)
    variants["llama2_meta"] = t
    t = Tokenizer.from_str(tok.to_str())
    t.normalizer = None
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                               split=True)
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    variants["llama2_always"] = t
    return variants


def build_llama3(train):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel
                                  .alphabet(), show_progress=False)
    tok.train_from_iterator(train, trainer)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL3[:6]])
    tok.add_tokens([AddedToken("<|note|>", special=False, normalized=True),
                    AddedToken("<|left|>", special=True, normalized=False, lstrip=True)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
        special_tokens=[("<|begin_of_text|>", bos)])
    return Tokenizer.from_str(tok.to_str())


def fnv1a(b):
    h = 0xcbf29ce484222325
    for c in b:
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_expect(path, tok, lines):
    encs = tok.encode_batch(lines, add_special_tokens=False)
    full = tok.encode("", add_special_tokens=True).ids
    # The template around an empty sequence gives prefix + suffix; find the split.
    one = tok.encode("x", add_special_tokens=True).ids
    xid = tok.encode("x", add_special_tokens=False).ids
    k = next(i for i in range(len(one)) if one[i:i + len(xid)] == xid)
    pre, suf = one[:k], one[k + len(xid):]
    assert full == pre + suf
    buf = bytearray(b"ETTE")
    buf += struct.pack("<II", 1, len(lines))
    buf += struct.pack("<I", len(pre)) + b"".join(struct.pack("<I", i) for i in pre)
    buf += struct.pack("<I", len(suf)) + b"".join(struct.pack("<I", i) for i in suf)
    ntok = 0
    for line, e in zip(lines, encs):
        ids = e.ids
        ntok += len(ids)
        assert all(i < 65536 for i in ids)
        buf += struct.pack("<I", len(ids)) + struct.pack("<%dH" % len(ids), *ids)
        d0 = tok.decode(ids, skip_special_tokens=False)
        d1 = tok.decode(ids, skip_special_tokens=True)
        flags = (1 if d0 == line else 0) | (2 if d1 == d0 else 0)
        buf.append(flags)
        for ok, d in ((flags & 1, d0), (flags & 2, d1)):
            if not ok:
                buf += struct.pack("<Q", fnv1a(d.encode("utf-8")))
    with open(path, "wb") as f:
        f.write(buf)
    print("%s: %d lines, %d ids, %d bytes" % (os.path.basename(path), len(lines), ntok, len(buf)))


def main():
    assert tokenizers.__version__ == "0.20.3", tokenizers.__version__
    os.makedirs(OUT, exist_ok=True)
    r = random.Random(20240509)
    train = training_text(r, 6000)
    toks = build_llama2(train)
    toks["llama3"] = build_llama3(train)
    lines = corpus(random.Random(7), 10500)
    buf = bytearray(b"ETTC") + struct.pack("<II", 1, len(lines))
    for line in lines:
        b = line.encode("utf-8")
        buf += struct.pack("<I", len(b)) + b
    with open(os.path.join(OUT, "corpus.bin"), "wb") as f:
        f.write(buf)
    print("corpus.bin: %d lines, %d bytes" % (len(lines), len(buf)))
    for name, tok in toks.items():
        d = json.loads(tok.to_str())
        if name == "llama2_legacy":
            # Exercise the older "a b" string form of merges (HF reads both).
            assert all(" " not in a and " " not in b for a, b in d["model"]["merges"])
            d["model"]["merges"] = [a + " " + b for a, b in d["model"]["merges"]]
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(d, f, ensure_ascii=False, indent=1)
            f.write("\n")
        # Reload from the written file so the expectations come from exactly that file.
        tok = Tokenizer.from_file(os.path.join(OUT, name + ".json"))
        write_expect(os.path.join(OUT, name + ".expect.bin"), tok, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
