#!/usr/bin/env python3
"""tools/golden/gen_templates.py - conversation template / label masking fixtures for
tests/test_golden_template.c (data/template.c).

Reproduces LLaVA's training preprocessing and evaluation prompts with HF transformers
(pinned 4.46.3, tokenizers 0.20.3) on the committed tokenizer fixtures of
tests/golden/tokenizer/ and writes the expected input_ids / labels.  No extra packages.

What is mirrored (rewritten here in our own words; the upstream function is named at each
place):
  haotian-liu/LLaVA llava/conversation.py      Conversation.get_prompt (SeparatorStyle.TWO,
                                                LLAMA_2, PLAIN), conv_vicuna_v1, conv_llava_v1,
                                                conv_llava_llama_2, conv_llava_plain
  haotian-liu/LLaVA llava/mm_utils.py          tokenizer_image_token
  haotian-liu/LLaVA llava/train/train.py       preprocess_multimodal, preprocess_v1 (with the
                                                `i != 0 and not tokenizer.legacy` adjustment of
                                                tokenizers >= 0.14), preprocess_llama_2,
                                                preprocess_plain, DataCollatorForSupervisedDataset
                                                (cut to model_max_length)
  LLaVA-VL/LLaVA-NeXT llava/train/train.py     preprocess_llama3 (chat template per message,
                                                unmasking of <|begin_of_text|>,
                                                <|start_header_id|>, <|end_header_id|>,
                                                <|eot_id|> and "\\n\\n")
  LLaVA-VL/LLaVA-NeXT llava/conversation.py    conv_llava_llama_3 (system text, stop id)
  haotian-liu/LLaVA llava/eval/model_vqa.py    eval prompt: question + assistant turn None
Extensions of emotune, applied the same way here and in C:
  - `<video>` is a second placeholder (id -201) handled exactly like `<image>` (split in
    tokenizer_image_token, moved to the front by preprocess_multimodal after `<image>`,
    added as a special token in the llama_3 path);
  - a leading {"from": "system"} turn replaces the template's system text;
  - roles "user"/"assistant" are accepted for "human"/"gpt";
  - labels at placeholder positions are IGNORE (LLaVA leaves -200, or for llama_3 the id of
    the added `<image>` token, there when the placeholder sits inside a supervised turn; the
    model's splice replaces the position by visual tokens with IGNORE labels, so the value is
    never used);
  - the llama_3 generation prompt is the training prefix (system + turns, one BOS) + the
    assistant header: LLaVA-NeXT's eval re-tokenizes the rendered text with BOS added, which
    doubles <|begin_of_text|>.
Tokenizers: llama2_legacy.json as LlamaTokenizerFast(legacy=True), llama2_meta.json as
LlamaTokenizerFast(legacy=False) (Metaspace prepend_scheme "first" is what a non-legacy
conversion produces), llama2_always.json with legacy=True, llama3.json as
PreTrainedTokenizerFast(bos <|begin_of_text|>, eos <|eot_id|>) with Meta-Llama-3-Instruct's
chat template. pad_token = unk_token as LLaVA's train() sets for v1 / llama_2.

Output: tests/golden/templates/cases.json
  {"version": 1, "cases": [{"name", "tokenizer" (file in tests/golden/tokenizer/),
    "template", "kind" ("train" | "prompt"), "turns": [{"from", "value"}],
    "opts": {"max_len", "legacy" (-1 auto | 0 | 1), "move_media"},
    "ids": [...], "labels": [...] (train), "mismatch", "truncated", "n_supervised" (train),
    "stop_str", "stop_id" (prompt),
    "attr_prompt" (optional: {"template", "position", "attributes", "rendered"}: the
    age-gender-race prompt of data/attr_prompt.h rendered into the first human turn before
    LLaVA's preprocessing; ids/labels are of the rendered conversation)}]}
"""
import copy
import json
import os
import re
import sys

import tokenizers
import transformers
from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
TOKDIR = os.path.join(ROOT, "tests", "golden", "tokenizer")
OUT = os.path.join(ROOT, "tests", "golden", "templates")

IGNORE = -100
IMAGE = -200
VIDEO = -201
MEDIA = ("<image>", "<video>")

# Meta-Llama-3-8B-Instruct's chat_template (tokenizer_config.json).
LLAMA3_CHAT = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

TEMPLATES = {
    # name: (style, system, roles, sep, sep2)
    "vicuna_v1": ("two", "A chat between a curious user and an artificial intelligence assistant. "
                  "The assistant gives helpful, detailed, and polite answers to the user's "
                  "questions.", ("USER", "ASSISTANT"), " ", "</s>"),
    "llava_v1": ("two", "A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's "
                 "questions.", ("USER", "ASSISTANT"), " ", "</s>"),
    "llava_llama_2": ("llama_2", "You are a helpful language and vision assistant. You are able "
                      "to understand the visual content that the user provides, and assist the "
                      "user with a variety of tasks using natural language.",
                      ("USER", "ASSISTANT"), "<s>", "</s>"),
    "llama_3": ("llama_3", "You are a helpful language and vision assistant. You are able to "
                "understand the visual content that the user provides, and assist the user with "
                "a variety of tasks using natural language.", ("user", "assistant"),
                "<|eot_id|>", None),
    "plain": ("plain", "", ("", ""), "\n", None),
}


def load_tok(name, legacy, max_len):
    path = os.path.join(TOKDIR, name)
    if name.startswith("llama3"):
        tok = PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<|begin_of_text|>",
                                      eos_token="<|eot_id|>", model_max_length=max_len,
                                      padding_side="right")
        tok.chat_template = LLAMA3_CHAT
    else:
        tok = LlamaTokenizerFast(tokenizer_file=path, legacy=legacy, model_max_length=max_len,
                                 padding_side="right")
        tok.pad_token = tok.unk_token
    # The transformers wrapper must tokenize exactly as the raw tokenizer.json (which the C
    # tokenizer matches).
    raw = tokenizers.Tokenizer.from_file(path)
    for s in ("USER: hi <image> x</s>y", " [INST] <<SYS>>\nz\n<</SYS>>\n\n", "a\n\nb<|eot_id|>"):
        assert tok(s).input_ids == raw.encode(s).ids, s
        assert tok(s, add_special_tokens=False).input_ids == raw.encode(s, add_special_tokens=False).ids, s
    return tok


def norm_turns(turns):
    """Roles to human/gpt, a leading system turn to the system text (emotune extension),
    then LLaVA's rule: a first turn that is not from the human is dropped."""
    turns = copy.deepcopy(turns)
    system = None
    if turns and turns[0]["from"] == "system":
        system = turns[0]["value"]
        turns = turns[1:]
    m = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt"}
    for t in turns:
        t["from"] = m[t["from"]]
    if turns and turns[0]["from"] != "human":
        turns = turns[1:]
    for j, t in enumerate(turns):
        assert t["from"] == ("human", "gpt")[j % 2]
    return system, turns


def preprocess_multimodal(turns):
    """llava/train/train.py preprocess_multimodal (mm_use_im_start_end False): every turn that
    contains the token loses all its copies and gets one at the front followed by a newline."""
    for t in turns:
        for m in MEDIA:
            if m in t["value"]:
                v = t["value"].replace(m, "").strip()
                t["value"] = (m + "\n" + v).strip()


def get_prompt(style, system, roles, sep, sep2, msgs):
    """llava/conversation.py Conversation.get_prompt; msgs = [(role, text or None)]."""
    if style == "two":
        seps = [sep, sep2]
        ret = system + seps[0]
        for i, (role, msg) in enumerate(msgs):
            if msg:
                ret += role + ": " + msg + seps[i % 2]
            else:
                ret += role + ":"
        return ret
    if style == "llama_2":
        ret = ""
        for i, (role, msg) in enumerate(msgs):
            if i == 0:
                assert msg and role == roles[0]
            if msg:
                if i == 0:
                    msg = "<<SYS>>\n%s\n<</SYS>>\n\n" % system + msg
                if i % 2 == 0:
                    ret += sep + "[INST] %s [/INST]" % msg
                else:
                    ret += " " + msg + " " + sep2
        return ret.lstrip(sep)
    raise ValueError(style)


def tokenizer_image_token(tok, prompt):
    """llava/mm_utils.py tokenizer_image_token, splitting at <image> and <video>."""
    parts = re.split("(<image>|<video>)", prompt)
    chunks = [tok(c).input_ids for c in parts[0::2]]
    marks = [IMAGE if p == "<image>" else VIDEO for p in parts[1::2]]
    out = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tok.bos_token_id:
        offset = 1
        out.append(chunks[0][0])
    for i, c in enumerate(chunks):
        if i > 0:
            out.extend(([marks[i - 1]] * (offset + 1))[offset:])
        out.extend(c[offset:])
    return out


def preprocess_rounds(tok, style, system, roles, sep, sep2, turns, has_image, max_len):
    """preprocess_v1 (style two) and preprocess_llama_2: returns ids, labels, mismatch."""
    msgs = [(roles[j % 2], t["value"]) for j, t in enumerate(turns)]
    conv = get_prompt(style, system, roles, sep, sep2, msgs)
    if has_image:
        ids = tokenizer_image_token(tok, conv)
    else:
        ids = tok(conv, max_length=max_len, truncation=True).input_ids
    tgt = list(ids)
    total_len = sum(1 for x in tgt if x != tok.pad_token_id)
    msep = sep + roles[1] + ": " if style == "two" else "[/INST] "
    rounds = conv.split(sep2)
    cur = 1
    tgt[:cur] = [IGNORE] * min(cur, len(tgt))
    for i, rou in enumerate(rounds):
        if rou == "":
            break
        parts = rou.split(msep)
        if len(parts) != 2:
            break
        parts[0] += msep
        if has_image:
            rl = len(tokenizer_image_token(tok, rou))
            il = len(tokenizer_image_token(tok, parts[0])) - 2
        else:
            rl = len(tok(rou).input_ids)
            il = len(tok(parts[0]).input_ids) - 2
        if style == "two" and i != 0 and not tok.legacy:
            rl -= 1
            il -= 1
        a, b = max(cur, 0), max(cur + il, 0)
        for k in range(a, min(b, len(tgt))):
            tgt[k] = IGNORE
        cur += rl
    for k in range(max(cur, 0), len(tgt)):
        tgt[k] = IGNORE
    mismatch = False
    if cur < max_len and cur != total_len:
        tgt = [IGNORE] * len(tgt)
        mismatch = True
    return ids, tgt, mismatch


def preprocess_plain(tok, turns):
    """preprocess_plain: the first value is replaced by its media token, conversation =
    media + answer + "\\n"; the media prefix is masked."""
    assert len(turns) == 2
    v = turns[0]["value"]
    m = "<image>" if "<image>" in v else "<video>"
    assert m in v
    conv = m + turns[1]["value"] + "\n"
    ids = tokenizer_image_token(tok, conv)
    n = len(tokenizer_image_token(tok, m))
    tgt = [IGNORE] * min(n, len(ids)) + ids[n:]
    return ids, tgt


def llama3_tok(tok, has_image):
    tok = copy.deepcopy(tok)
    if has_image:
        tok.add_tokens(list(MEDIA), special_tokens=True)
    return tok


def llama3_media(tok, ids):
    iid = tok.convert_tokens_to_ids("<image>")
    vid = tok.convert_tokens_to_ids("<video>")
    return [IMAGE if (x == iid and iid is not None) else VIDEO if (x == vid and vid is not None)
            else x for x in ids]


def preprocess_llama3(tok, system, turns, has_image):
    """LLaVA-NeXT preprocess_llama3."""
    tok = llama3_tok(tok, has_image)
    unmask = [tok.convert_tokens_to_ids(t) for t in
              ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
               "\n\n")]
    ids = tok.apply_chat_template([{"role": "system", "content": system}])
    tgt = [IGNORE] * len(ids)
    for t in turns:
        role = "user" if t["from"] == "human" else "assistant"
        enc = tok.apply_chat_template([{"role": role, "content": t["value"]}])[1:]
        ids += enc
        tgt += [IGNORE] * len(enc) if role == "user" else enc
    for k, x in enumerate(ids):
        if x in unmask:
            tgt[k] = x
    return llama3_media(tok, ids), tgt


def train_case(tok, tname, turns, max_len, move):
    style, system, roles, sep, sep2 = TEMPLATES[tname]
    sysov, turns = norm_turns(turns)
    if sysov is not None:
        system = sysov
    if move:
        preprocess_multimodal(turns)
    has_image = any(m in t["value"] for t in turns for m in MEDIA)
    mismatch = False
    if style in ("two", "llama_2"):
        ids, tgt, mismatch = preprocess_rounds(tok, style, system, roles, sep, sep2, turns,
                                               has_image, max_len)
    elif style == "plain":
        ids, tgt = preprocess_plain(tok, turns)
    else:
        ids, tgt = preprocess_llama3(tok, system, turns, has_image)
    # The collator (and the tokenizer's truncation when there is no image) keeps the first
    # model_max_length tokens.
    if style in ("two", "llama_2"):
        n_full = len(tokenizer_image_token(tok, get_prompt(
            style, system, roles, sep, sep2,
            [(roles[j % 2], t["value"]) for j, t in enumerate(turns)])))
    else:
        n_full = len(ids)
    truncated = n_full > max_len
    ids, tgt = ids[:max_len], tgt[:max_len]
    tgt = [IGNORE if x in (IMAGE, VIDEO) else y for x, y in zip(ids, tgt)]
    return {"ids": ids, "labels": tgt, "mismatch": mismatch, "truncated": truncated,
            "n_supervised": sum(1 for y in tgt if y != IGNORE)}


def prompt_case(tok, tname, turns, move):
    style, system, roles, sep, sep2 = TEMPLATES[tname]
    sysov, turns = norm_turns(turns)
    if sysov is not None:
        system = sysov
    if move:
        preprocess_multimodal(turns)
    if style in ("two", "llama_2"):
        msgs = [(roles[j % 2], t["value"]) for j, t in enumerate(turns)] + [(roles[1], None)]
        ids = tokenizer_image_token(tok, get_prompt(style, system, roles, sep, sep2, msgs))
        stop = sep2
    elif style == "llama_3":
        has_image = any(m in t["value"] for t in turns for m in MEDIA)
        t2 = llama3_tok(tok, has_image)
        msgs = [{"role": "system", "content": system}] + [
            {"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]}
            for t in turns]
        text = t2.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ids = llama3_media(t2, t2(text, add_special_tokens=False).input_ids)
        stop = "<|eot_id|>"
    else:
        m = "<image>" if "<image>" in turns[0]["value"] else "<video>"
        ids = tokenizer_image_token(tok, m)
        stop = "\n"
    sid = tok.convert_tokens_to_ids(stop) if stop != "\n" else None
    if sid == tok.unk_token_id:
        sid = None
    return {"ids": ids, "stop_str": stop, "stop_id": -1 if sid is None else sid}


def H(v):
    return {"from": "human", "value": v}


def G(v):
    return {"from": "gpt", "value": v}


Q1 = "What is the emotion of this face?"
A1 = "The person looks happy: a broad smile, raised cheeks and relaxed brows."
Q2 = "Which action units are active?"
A2 = "AU6 and AU12, the cheek raiser and the lip corner puller."
Q3 = "Describe the mouth."
A3 = "The mouth is open with the lip corners pulled up."
EVAL_Q = "What emotions are conveyed by this face?"


def single(img):
    return [H((Q1 + "\n<image>") if img else Q1), G(A1)]


def multi(img):
    return [H(("<image>\n" + Q1) if img else Q1), G(A1), H(Q2), G(A2), H(Q3), G(A3)]


def cases():
    c = []

    def add(name, tokf, legacy, tname, turns, kind="train", max_len=2048, move=True,
            opt_legacy=-1, attr=None):
        # legacy: tokenizer.legacy as LLaVA sees it; opt_legacy: what the C side is given
        # (-1: detect from the tokenizer's behaviour). attr: an attribute prompt
        # {"template", "position", "attributes"} rendered into the first human turn first.
        c.append(dict(name=name, tokenizer=tokf, legacy=legacy, template=tname, kind=kind,
                      turns=turns, max_len=max_len, move=move, opt_legacy=opt_legacy,
                      attr=attr))

    L2 = [("legacy", "llama2_legacy.json", True), ("meta", "llama2_meta.json", False)]
    for tname in ("vicuna_v1", "llava_v1", "llava_llama_2"):
        for tag, f, leg in L2:
            for img in (False, True):
                add("%s_%s_single_%s" % (tname, tag, "img" if img else "text"), f, leg, tname,
                    single(img))
                add("%s_%s_multi3_%s" % (tname, tag, "img" if img else "text"), f, leg, tname,
                    multi(img))
    for img in (False, True):
        add("llama_3_single_%s" % ("img" if img else "text"), "llama3.json", None, "llama_3",
            single(img))
        add("llama_3_multi3_%s" % ("img" if img else "text"), "llama3.json", None, "llama_3",
            multi(img))
    add("vicuna_always_multi3_img", "llama2_always.json", True, "vicuna_v1", multi(True))
    add("plain_img", "llama2_legacy.json", True, "plain", [H("Describe <image> briefly."), G(A1)])
    add("plain_video", "llama2_meta.json", False, "plain", [H("<video>"), G(A2)])
    # special tokens in the text
    sp = [H("Is <s> a token? </s> USER: hi"), G("Yes </s> and <unk> too."), H("ok"), G("fine")]
    add("vicuna_legacy_specials", "llama2_legacy.json", True, "vicuna_v1", sp)
    add("vicuna_meta_specials", "llama2_meta.json", False, "vicuna_v1", sp)
    add("llama2_legacy_specials", "llama2_legacy.json", True, "llava_llama_2", sp)
    add("vicuna_legacy_fake_sep", "llama2_legacy.json", True, "vicuna_v1",
        [H("say ASSISTANT: now"), G(A1)])
    add("vicuna_legacy_face_tokens", "llama2_legacy.json", True, "vicuna_v1",
        [H("<image>[FACE] hello_world x"), G("[FACE]   smile hello_world")])
    add("llama_3_specials", "llama3.json", None, "llama_3",
        [H("a <|eot_id|> b <|start_header_id|>"), G("c<|begin_of_text|> <|note|> d\n\n e")])
    # unicode
    uni = [H("\u00a0<image>\u3000 Qu'est-ce que c'est? 😀 中文 e\u0301\u2028"),
           G("Это радость 😂👍🏽, ﬁ ǅ \u200b."), H("\x1c عربى \t"), G(" ok ")]
    add("vicuna_legacy_unicode", "llama2_legacy.json", True, "vicuna_v1", uni)
    add("llama2_meta_unicode", "llama2_meta.json", False, "llava_llama_2", uni)
    add("llama_3_unicode", "llama3.json", None, "llama_3", uni)
    # empty answers / questions
    emp = [H("<image>\n" + Q1), G(""), H(Q2), G(A2)]
    add("vicuna_legacy_empty_answer", "llama2_legacy.json", True, "vicuna_v1", emp)
    add("llava_v1_legacy_empty_last_answer", "llama2_legacy.json", True, "llava_v1",
        [H(Q1), G(A1), H(Q2), G("")])
    add("llama2_legacy_empty_answer", "llama2_legacy.json", True, "llava_llama_2", emp)
    add("llama_3_empty_answer", "llama3.json", None, "llama_3", emp)
    add("vicuna_legacy_empty_question", "llama2_legacy.json", True, "vicuna_v1",
        [H(Q1), G(A1), H(""), G(A2)])
    # truncation
    long_a = " ".join(["The brows are lowered and drawn together, the eyes narrowed."] * 12)
    lng = [H("<image>\n" + Q1), G(long_a), H(Q2), G(A2)]
    add("vicuna_legacy_truncated", "llama2_legacy.json", True, "vicuna_v1", lng, max_len=160)
    add("vicuna_legacy_truncated_text", "llama2_legacy.json", True, "vicuna_v1",
        [H(Q1), G(long_a)], max_len=120)
    add("vicuna_legacy_truncated_all", "llama2_legacy.json", True, "vicuna_v1",
        [H(Q1 + " " + long_a), G(A1)], max_len=100)
    add("llama_3_truncated", "llama3.json", None, "llama_3", lng, max_len=150)
    add("llama2_meta_truncated", "llama2_meta.json", False, "llava_llama_2", lng, max_len=200)
    # LLaVA's mismatch (warning + all labels IGNORE)
    add("vicuna_meta_forced_legacy", "llama2_meta.json", True, "vicuna_v1", multi(True),
        opt_legacy=1)
    add("vicuna_legacy_forced_nonlegacy", "llama2_legacy.json", False, "vicuna_v1",
        multi(False), opt_legacy=0)
    add("vicuna_legacy_trailing_human_mismatch", "llama2_legacy.json", True, "vicuna_v1",
        [H(Q1), G(A1), H(Q2)])
    # options, roles, system
    add("vicuna_legacy_no_move", "llama2_legacy.json", True, "vicuna_v1",
        [H("Look: <image> and <image>. " + Q1), G(A1)], move=False)
    add("vicuna_legacy_move_two_images", "llama2_legacy.json", True, "vicuna_v1",
        [H("Look: <image> and <image>. " + Q1), G(A1)])
    add("vicuna_legacy_video_and_image", "llama2_legacy.json", True, "vicuna_v1",
        [H("frames <video> still <image> " + Q2), G(A2)])
    add("llama_3_video", "llama3.json", None, "llama_3", [H(Q2 + " <video>"), G(A2)])
    add("vicuna_legacy_system_roles", "llama2_legacy.json", True, "vicuna_v1",
        [{"from": "system", "value": "You analyse faces."}, {"from": "user", "value": Q1},
         {"from": "assistant", "value": A1}])
    add("llama_3_system", "llama3.json", None, "llama_3",
        [{"from": "system", "value": "  You analyse faces.\n"}, H("<image>" + Q1), G(A1)])
    add("llama2_legacy_system", "llama2_legacy.json", True, "llava_llama_2",
        [{"from": "system", "value": "Be brief."}, H(Q1), G(A1)])
    add("vicuna_legacy_leading_gpt_dropped", "llama2_legacy.json", True, "vicuna_v1",
        [G("ignored"), H(Q1), G(A1)])
    # evaluation prompts
    ev = [H(EVAL_Q + "\n<image>")]
    add("prompt_vicuna_legacy_eval", "llama2_legacy.json", True, "vicuna_v1", ev, "prompt")
    add("prompt_vicuna_meta_eval", "llama2_meta.json", False, "vicuna_v1", ev, "prompt")
    add("prompt_llava_v1_legacy_eval", "llama2_legacy.json", True, "llava_v1",
        [H("<image>\n" + EVAL_Q)], "prompt")
    add("prompt_llava_v1_legacy_au", "llama2_legacy.json", True, "llava_v1",
        [H("What AUs are conveyed by this face?<image>")], "prompt")
    add("prompt_llama2_legacy_eval", "llama2_legacy.json", True, "llava_llama_2", ev, "prompt")
    add("prompt_llama_3_eval", "llama3.json", None, "llama_3", ev, "prompt")
    add("prompt_vicuna_legacy_multi", "llama2_legacy.json", True, "vicuna_v1",
        multi(True)[:5], "prompt")
    add("prompt_llama2_meta_multi", "llama2_meta.json", False, "llava_llama_2",
        multi(True)[:3], "prompt")
    add("prompt_llama_3_multi", "llama3.json", None, "llama_3", multi(True)[:3], "prompt")
    add("prompt_plain", "llama2_legacy.json", True, "plain", ev, "prompt")
    # EMO-LLaMA's attribute (age-gender-race) prompt, rendered before LLaVA's preprocessing
    AGR = "Attributes of the person: age {age}, gender {gender}, race {race}."
    young = {"age": "young adult", "gender": "female", "race": "dark"}
    add("agr_vicuna_legacy_single_img_prefix", "llama2_legacy.json", True, "vicuna_v1",
        single(True), attr=dict(template=AGR, position="prefix", attributes=young))
    add("agr_vicuna_meta_multi3_img_suffix", "llama2_meta.json", False, "vicuna_v1",
        multi(True), attr=dict(template=AGR, position="suffix", attributes=young))
    add("agr_vicuna_meta_multi3_img_prefix", "llama2_meta.json", False, "vicuna_v1",
        multi(True), attr=dict(template="({age} years, {gender}) {{{race}}}", position="prefix",
                               attributes={"age": "34", "gender": "male", "race": "Asian"}))
    add("agr_llama_3_single_img_prefix", "llama3.json", None, "llama_3", multi(True)[:2],
        attr=dict(template=AGR, position="prefix", attributes=young))
    add("agr_plain_img", "llama2_legacy.json", True, "plain", [H("<image>"), G(A1)],
        attr=dict(template=AGR, position="prefix", attributes=young))
    add("agr_prompt_vicuna_meta", "llama2_meta.json", False, "vicuna_v1",
        [H("<image>\n" + EVAL_Q)], "prompt",
        attr=dict(template=AGR, position="prefix", attributes=young))
    return c


MEDIA_LEAD = re.compile(r"^(?:\s*(?:<image>|<video>))+\s*")


def apply_attr(turns, attr):
    """The attribute prompt in the first human turn (data/attr_prompt.h, restated)."""
    if not attr:
        return turns
    a = attr["attributes"]
    prompt = attr["template"].format(age=a["age"], gender=a["gender"], race=a["race"])
    out = copy.deepcopy(turns)
    for t in out:
        if t["from"] in ("human", "user"):
            v = t["value"]
            if attr["position"] == "suffix":
                t["value"] = v + " " + prompt
            else:
                m = MEDIA_LEAD.match(v)
                lead = m.group(0) if m else ""
                rest = v[len(lead):]
                if lead and not lead[-1].isspace():
                    lead += "\n"
                t["value"] = lead + prompt + (" " + rest if rest else "")
            break
    return out


def main():
    assert transformers.__version__ == "4.46.3", transformers.__version__
    assert tokenizers.__version__ == "0.20.3", tokenizers.__version__
    os.makedirs(OUT, exist_ok=True)
    out = []
    counts = {"train": 0, "prompt": 0, "mismatch": 0, "truncated": 0, "no_supervised": 0}
    for cs in cases():
        tok = load_tok(cs["tokenizer"], cs["legacy"], cs["max_len"])
        turns = apply_attr(cs["turns"], cs["attr"])
        if cs["kind"] == "train":
            r = train_case(tok, cs["template"], turns, cs["max_len"], cs["move"])
        else:
            r = prompt_case(tok, cs["template"], turns, cs["move"])
        rec = {"name": cs["name"], "tokenizer": cs["tokenizer"], "template": cs["template"],
               "kind": cs["kind"], "turns": cs["turns"],
               "opts": {"max_len": cs["max_len"], "legacy": cs["opt_legacy"], "move_media": cs["move"]}}
        if cs["attr"]:  # the C side renders the prompt itself; "rendered" is the expected turn
            rec["attr_prompt"] = dict(cs["attr"], rendered=next(
                t["value"] for t in turns if t["from"] in ("human", "user")))
        rec.update(r)
        out.append(rec)
        counts[cs["kind"]] += 1
        if cs["kind"] == "train":
            counts["mismatch"] += r["mismatch"]
            counts["truncated"] += r["truncated"]
            counts["no_supervised"] += r["n_supervised"] == 0
    path = os.path.join(OUT, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "cases": out}, f, ensure_ascii=False, indent=None,
                  separators=(",", ":"))
        f.write("\n")
    print("%s: %d cases %s" % (path, len(out), counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
