#!/usr/bin/env python3
"""tools/golden/gen_metrics.py - golden cases for train/eval/metrics.c (EmoLA's FABA-Bench metrics).

Writes tests/golden/metrics/:
  emotion_cases.jsonl  one emotion sample per line: prediction, label, reference, the class
                       EmoLA's rule gives (-1 where EmoLA's code raises), ROUGE-L f/p/r
  au_cases.jsonl       one AU sample per line: prediction, label, reference, the AUs found,
                       EmoLA's 20-AU FABA prediction/target vectors, ROUGE-L f/p/r
  summary.json         whole-set numbers: accuracy, UAR, confusion matrix, per-AU F1 (FABA,
                       DISFA, BP4D, GFT, EmotioNet selections), mean F1, S_re, S_ge, REGE

The rules mirror EmoLA's evaluation script (github.com/JackYFL/EmoLA,
emollava/eval/eval_FABA.py at commit ac647aa; llava/eval/eval_FABA.py holds the same
functions): remove_neg_sentences, description2emotion, AU2Labels, AUint2Labels,
AUIndicesMap, get_acc_F1, cal_rouge and the aggregation at the end of eval(). The functions
below are restatements of those rules (same regexes, same list orders), not copies.
ROUGE-L comes from the real `rouge` package (pip install rouge==1.0.1), the per-AU confusion
matrix from scikit-learn's confusion_matrix as EmoLA uses it (pip install scikit-learn).

Where EmoLA's code raises for a sample, the fixture records what emotune does instead:
  - description2emotion raises AttributeError when the negation-filtered text has no '.',
    '!' or '?' before its first newline (re.match returns None): expected class -1.
  - Rouge.get_scores raises ValueError when the prediction or the reference is empty after
    splitting on '.' ("" or only dots): rouge null; EmoLA's try/except leaves such a sample
    out of the ROUGE mean, and so does emotune.
  - rouge's LCS back-trace is recursive; sentences of several hundred words exceed Python's
    default recursion limit (RecursionError, silently skipped by EmoLA). This script raises
    the limit so the package computes the value emotune computes.

Run: python3 tools/golden/gen_metrics.py   (deterministic: random.Random(1234))
"""
import json
import os
import random
import re
import sys

import numpy as np
from rouge import Rouge
from sklearn.metrics import confusion_matrix

sys.setrecursionlimit(100000)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "metrics")

# ---- EmoLA's rules (emollava/eval/eval_FABA.py) ----------------------------------------------

# emotion_list: the keyword lists, in EmoLA's dict order.
EMOTION_WORDS = {
    "happiness": ["happiness", "happy", "smiling", "smile", "pleasant", "content", "contentment",
                  "relaxed", "relaxation", "cheerful", "joy", "amusement", "amused", "positivity",
                  "positive", "lightheartedness", "joyful", "friendly", "warmth", "bright"],
    "neutral": ["neutral", "neutrality", "calm", "contemplative", "concerned", "thoughtful",
                "focused", "solemn", "mild"],
    "surprise": ["surprise", "surprised", "startled", "puzzled", "astonishment", "disbelief",
                 "wonder", "curiosity", "curious", "confusion", "wonder", "bewilderment",
                 "skepticism", "excitement", "uncertainty"],
    "fear": ["fear", "shock", "anxiety", "apprehension", "tension", "panic", "alertness", "focus",
             "worry", "alarm", "curiosity", "contemplation"],
    "disgust": ["disgust", "distaste", "disgusted", "discomfort", "displeasure", "displeased",
                "disapproval", "disdain", "contempt"],
    "anger": ["anger", "mad", "irate", "outraged", "agitation", "irritated", "enraged", "annoyed",
              "incensed", "serious", "frustration", "displeased", "stern"],
    "sadness": ["sadness", "crying", "distress", "concern", "discomfort", "anguish", "somber"],
}
EMOTIONS2NUM = {"Happiness": 0, "Sadness": 1, "Surprise": 2, "Anger": 3, "Neutral": 4,
                "Disgust": 5, "Fear": 6}
ORDER = ["happiness", "sadness", "surprise", "anger", "neutral", "disgust", "fear"]
NEGATIVE_WORDS = ["not", "no", "isn't ", "nothing", "cannot", "won't", "shouldn't", "neither",
                  "nor"]
SPLIT_RE = r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s"


def remove_neg_sentences(text):
    # remove_neg_sentences: split after '.'/'?' + one whitespace char (not after "e.g." or
    # "Mr." shapes), drop sentences containing a negative word as a lower-case substring.
    kept = [s for s in re.split(SPLIT_RE, text)
            if not any(w in s.lower() for w in NEGATIVE_WORDS)]
    return " ".join(kept)


def description2emotion(description):
    # description2emotion; returns -1 where EmoLA raises AttributeError (no sentence end).
    text = remove_neg_sentences(description)
    if text == "":
        text = description
    m = re.match(r"^(.*?)[.!?]", text)
    if m is None:
        return -1
    first = m.group(1)
    rest = re.sub(r"^(.*?)[.!?]", "", text)
    for word in re.findall(r"\b\w+\b", first.lower()):
        for emo in ORDER:
            if word in EMOTION_WORDS[emo]:
                return ORDER.index(emo)
    counts = {emo: 0 for emo in ORDER}
    for word in re.findall(r"\b\w+\b", rest.lower()):
        for emo in ORDER:
            if word in EMOTION_WORDS[emo]:
                counts[emo] += 1
    best = max(counts, key=lambda k: counts[k])  # first maximum in ORDER
    return ORDER.index(best)


def emotion_target(label):
    # eval(): target = int(img_label), else emotions2num[img_label]
    try:
        return int(label)
    except (TypeError, ValueError):
        return EMOTIONS2NUM[label]


# AUIndicesMap (dataset -> AU index map) and the select_AUs lists of eval().
AU_MAPS = {
    "EmotioNet": [1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26, 43],
    "DISFA": [1, 2, 4, 6, 9, 12, 25, 26],
    "BP4D": [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24],
    "GFT": [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 18, 20, 23, 24, 25, 26],
    "FABA": [1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 27, 43],
}
SELECT_AUS = {
    "GFT": [1, 2, 4, 6, 10, 12, 14, 15, 23, 24],
    "EmotioNet": [1, 2, 4, 5, 6, 9, 12, 17, 20, 25, 26, 43],
    "DISFA": [1, 2, 4, 6, 9, 12, 25, 26],
    "BP4D": [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24],
    "FABA": [1, 2, 4, 5, 6, 10, 12, 17, 24, 25, 26, 43],
}


def au2labels(text, au_map):
    # AU2Labels: every re.findall("AU(\d+)") match that is a key of the map sets its bit.
    idx = {str(a): i for i, a in enumerate(au_map)}
    v = [0] * len(au_map)
    for num in re.findall(r"AU(\d+)", text):
        if num in idx:
            v[idx[num]] = 1
    return v


def auint2labels(label, au_map):
    # AUint2Labels: label.split(', '), each piece a key of the map.
    idx = {str(a): i for i, a in enumerate(au_map)}
    v = [0] * len(au_map)
    for a in label.split(", "):
        if a in idx:
            v[idx[a]] = 1
    return v


def aus_found(text):
    # What et_emola_aus returns: the distinct matches that can equal str(AU) for an integer
    # AU (ASCII digits, no leading zero), in order of first appearance.
    out = []
    for num in re.findall(r"AU(\d+)", text):
        if num.isascii() and num == str(int(num)) and len(num) <= 4 and int(num) not in out:
            out.append(int(num))
    return out


def get_acc_f1(cm):
    # get_acc_F1 on a 2x2 sklearn confusion matrix (IndexError on 1x1 -> AU left out).
    tp, tn, fp, fn = cm[1, 1], cm[0, 0], cm[0, 1], cm[1, 0]
    acc = (tp + tn) / (tp + tn + fp + fn)
    if tp == 0:
        f1 = 0
    else:
        p = tp / (tp + fp)
        r = tp / (tp + fn)
        f1 = 2 * p * r / (p + r)
    return float(acc), float(f1)


def cal_rouge(reference, prediction):
    # cal_rouge: rouge-l of Rouge().get_scores(prediction, reference, avg=True); None where
    # the package raises (EmoLA's try/except skips the sample).
    try:
        s = Rouge().get_scores(prediction, reference, avg=True)["rouge-l"]
    except ValueError:
        return None
    return {"f": s["f"], "p": s["p"], "r": s["r"]}


# ---- texts ----------------------------------------------------------------------------------

NAMES = ["Happiness", "Sadness", "Surprise", "Anger", "Neutral", "Disgust", "Fear"]

OPENERS = ["The person in the image appears to be experiencing {w}.",
           "The facial expression conveys {w}.",
           "This face shows a clear sense of {w}.",
           "The individual seems to feel {w}.",
           "The emotion conveyed by this face is {w}.",
           "Based on the facial features, the person is likely feeling {w}.",
           "The woman in the picture displays {w}.",
           "The man's expression suggests {w}."]
CUES = {
    0: ["The corners of the mouth are raised in a broad smile, and the cheeks are lifted.",
        "There are crow's feet around the eyes, a sign of genuine joy.",
        "The eyes are slightly narrowed and the teeth are visible, which suggests amusement.",
        "The overall expression is warm and friendly, radiating positivity."],
    1: ["The inner corners of the eyebrows are raised and the lips are pulled down.",
        "The eyes look downcast and glassy, as if on the verge of crying.",
        "The mouth droops at the corners, conveying a somber mood.",
        "The slight frown and lowered gaze point to distress and anguish."],
    2: ["The eyebrows are raised high and the eyes are wide open.",
        "The mouth hangs open, a typical sign of astonishment.",
        "The forehead shows horizontal wrinkles from the lifted brows, suggesting disbelief.",
        "The expression reflects wonder and a hint of excitement."],
    3: ["The eyebrows are drawn together and lowered, creating a deep furrow.",
        "The lips are pressed tightly together and the jaw is clenched.",
        "The eyes glare intensely, showing frustration.",
        "The nostrils are flared and the face looks stern and irritated."],
    4: ["The facial muscles appear relaxed, with no particular tension around the mouth.",
        "The gaze is steady and the lips are closed, giving a calm look.",
        "The face is composed and thoughtful, without strong emotional cues.",
        "The expression is mild and neutral overall."],
    5: ["The upper lip is raised and the nose is wrinkled.",
        "The mouth corners are pulled down in distaste.",
        "The face turns slightly away, as if reacting to something unpleasant, showing disapproval.",
        "The narrowed eyes and curled lip convey disdain and contempt."],
    6: ["The eyes are wide and the eyebrows are raised and pulled together.",
        "The lips are stretched horizontally, a sign of anxiety.",
        "The person appears tense, with visible apprehension in the eyes.",
        "The face shows panic and alarm, as if facing a threat."],
}
EMO_WORDS = {0: ["happiness", "joy", "contentment", "amusement"],
             1: ["sadness", "distress", "anguish", "sadness"],
             2: ["surprise", "astonishment", "disbelief", "wonder"],
             3: ["anger", "frustration", "agitation", "anger"],
             4: ["neutrality", "calm", "a neutral state", "a calm and focused state"],
             5: ["disgust", "distaste", "displeasure", "disapproval"],
             6: ["fear", "anxiety", "apprehension", "panic"]}
CLOSERS = ["Overall, the expression is consistent with {w}.",
           "These cues together suggest {w}.",
           "The combination of these features indicates {w}.",
           ""]


def reference_for(c, rng):
    w = rng.choice(EMO_WORDS[c])
    parts = [rng.choice(OPENERS).format(w=w)] + rng.sample(CUES[c], 2)
    closer = rng.choice(CLOSERS).format(w=w)
    if closer:
        parts.append(closer)
    return " ".join(parts)


def realistic_prediction(c, rng):
    w = rng.choice(EMO_WORDS[c])
    parts = [rng.choice(OPENERS).format(w=w)] + rng.sample(CUES[c], rng.randint(1, 3))
    closer = rng.choice(CLOSERS).format(w=rng.choice(EMO_WORDS[c]))
    if closer:
        parts.append(closer)
    return " ".join(parts)


LONG_CUES = " ".join(s for c in range(7) for s in CUES[c])

ADVERSARIAL_EMOTION = [
    # (prediction, label)
    ("The person is not happy. They look sad.", "Sadness"),
    ("The person is not happy. The face shows sadness.", "Sadness"),
    ("The person is not happy. The face shows deep sadness and distress.", "Sadness"),
    ("There is no smile. The brows are lowered in anger.", "Anger"),
    ("She isn't smiling at all. The expression is one of disgust.", "Disgust"),
    ("She isn't happy. The expression is one of disgust.", "Disgust"),
    ("Nothing suggests joy here. The wide eyes show fear.", "Fear"),
    ("The man cannot hide his surprise. His face shows anger.", "Anger"),
    ("He won't smile. He looks stern.", "Anger"),
    ("Neither joy nor sadness is visible. The face is calm.", "Neutral"),
    ("The person is not angry. The person is not sad.", "Neutral"),
    ("There is no sign of fear. There is no sign of anger.", "Neutral"),
    ("Not happy. No joy. Nothing pleasant.", "Sadness"),
    ("The face is not calm. Nor is it happy.", "Anger"),
    ("The eyes do not show fear? The mouth shows surprise.", "Surprise"),
    ("The person looks happy! But there is no real joy. The eyes show sadness.", "Sadness"),
    ("The expression is annoyed. The face shows sadness.", "Anger"),
    ("The nose is wrinkled in disgust. The eyes are wide with fear.", "Disgust"),
    ("You know, the face shows joy. The brows show anger.", "Happiness"),
    ("The expression looks normal. The face shows fear.", "Fear"),
    ("An enormous smile. A hint of anger.", "Happiness"),
    ("The expression isn't. Happy face.", "Happiness"),
    ("The expression isn't happy. Sad face.", "Sadness"),
    ("The person is not happy.", "Sadness"),
    ("No.", "Neutral"),
    ("No. ", "Neutral"),
    ("Not sad, not angry.", "Happiness"),
    # ties and counting in the remaining text
    ("The face. Joy and sadness.", "Happiness"),
    ("The face. Sadness and joy.", "Sadness"),
    ("The face. Anger, fear, fear, anger.", "Anger"),
    ("The face. Fear, fear, anger.", "Fear"),
    ("The face. Discomfort.", "Sadness"),
    ("The face. Discomfort, disgust.", "Disgust"),
    ("The face. Displeased.", "Disgust"),
    ("The face. Displeased and stern.", "Anger"),
    ("The face. Curiosity.", "Surprise"),
    ("The face. Curiosity, focus, worry.", "Fear"),
    ("Look at this displeased face.", "Anger"),
    ("A curious face.", "Surprise"),
    ("A face with discomfort.", "Sadness"),
    ("A face. Wonder wonder wonder. Joy joy.", "Surprise"),
    # nothing matches: all counts zero -> the first class (happiness)
    ("The person has brown hair and wears glasses.", "Neutral"),
    ("The image shows a face.", "Sadness"),
    (".", "Happiness"),
    ("?", "Happiness"),
    ("!!!", "Happiness"),
    ("...", "Neutral"),
    ("Sad.", "Sadness"),
    ("Angry face.", "Anger"),
    ("Scared.", "Fear"),
    # no sentence end before the first newline: EmoLA raises -> -1
    ("", "Neutral"),
    ("   ", "Neutral"),
    ("happiness", "Happiness"),
    ("The person looks happy", "Happiness"),
    ("Surprise", "Surprise"),
    ("The person looks happy\nand relaxed.", "Happiness"),
    ("\nThe person looks sad.", "Sadness"),
    ("The face shows fear, anxiety and panic", "Fear"),
    # punctuation variants
    ("The person is happy! The eyes sparkle.", "Happiness"),
    ("Is the person happy? Yes, very happy.", "Happiness"),
    ("Is the person sad?No, the person is happy.", "Happiness"),
    ("The face shows... surprise. Wide eyes.", "Surprise"),
    ("The face shows surprise... The mouth is open.", "Surprise"),
    ("The face shows surprise...The mouth is open.", "Surprise"),
    ("The eyebrows are lowered. The person looks stern", "Anger"),
    ("The eyebrows are lowered; the person looks stern. Really.", "Anger"),
    ("The eyebrows are lowered, the lips pressed: anger!", "Anger"),
    ("Wow! What disgust!", "Disgust"),
    ("What is this? Fear.", "Fear"),
    ("What is this? Fear and sadness.", "Fear"),
    ("Hmm?! The face is calm.", "Neutral"),
    ("The face...is calm...", "Neutral"),
    ("The face is calm.\tThe eyes are relaxed.", "Neutral"),
    ("The face is tense.\nThe eyes show fear.\nThe mouth is open.", "Fear"),
    ("The face is tense.\n\nNo fear at all.", "Fear"),
    ("The face is tense.  The eyes show panic.", "Fear"),
    # upper case
    ("THE PERSON LOOKS HAPPY.", "Happiness"),
    ("The Person Shows SADNESS And DISTRESS.", "Sadness"),
    ("The person is NOT happy. The person is ANGRY and IRRITATED.", "Anger"),
    ("NO JOY. FEAR.", "Fear"),
    ("The face: HaPpY.", "Happiness"),
    # words inside other words
    ("The person looks unhappy.", "Sadness"),
    ("The person smiles broadly.", "Happiness"),
    ("The person smiled. Happily so.", "Happiness"),
    ("The person is sadly looking down. Sadder than before.", "Sadness"),
    ("A happy-go-lucky look.", "Happiness"),
    ("A face full of anger_issues. Joy.", "Happiness"),
    ("A face full of fear2. Joy.", "Happiness"),
    ("The discontent is visible. Mild frustration.", "Anger"),
    ("The fearful eyes. The angry mouth.", "Fear"),
    ("Content. Discontent.", "Happiness"),
    ("The face is contented and joyous.", "Happiness"),
    ("A smile-like grimace.", "Happiness"),
    ("The person's smile. Sadness's weight.", "Happiness"),
    # the sentence splitter's look-behinds
    ("The person, e.g. Mr. Smith, shows no joy. Fear.", "Fear"),
    ("Mr. Smith is happy. He is not sad.", "Happiness"),
    ("Dr. Lee shows fear. Sadness is absent.", "Fear"),
    ("The U.S. flag. No joy here. Anger.", "Anger"),
    ("The i.e. form. Not sad. Anger.", "Anger"),
    ("A B.C. example? Not happy.", "Happiness"),
    ("It is Ok. Not sad. Joy.", "Happiness"),
    ("Face (a.k.a. visage) is calm. Not angry.", "Neutral"),
    ("The cheeks are raised.The person looks happy. There is no sadness.", "Happiness"),
    ("Fear.\u00a0No sadness.", "Fear"),
    # non-ASCII input (Python's re on str: Unicode \w, \s, \d; str.lower())
    ("The person isn\u2019t happy. The face shows sadness.", "Sadness"),
    ("The person isn't happy.\u2003The face shows sadness.", "Sadness"),
    ("The person is not happy.\u00a0The face shows sadness.", "Sadness"),
    ("The person is not happy.\u3000The face shows sadness.", "Sadness"),
    ("The person is not happy.\u200bThe face shows sadness.", "Sadness"),
    ("The person is not happy.\u001fThe face shows sadness.", "Sadness"),
    ("The person is not happy.\u0085The face shows sadness.", "Sadness"),
    ("A happy\u2014and bright\u2014face.", "Happiness"),
    ("A happy\u00e9 face. Anger.", "Anger"),
    ("A caf\u00e9 scene, \u00e9happy. Anger.", "Anger"),
    ("\u00c9motion: joy.", "Happiness"),
    ("The face shows \u0130rate anger.", "Anger"),
    ("The face. \u0130curious.", "Surprise"),
    ("The face shows s\u212aepticism.", "Surprise"),
    ("Le visage exprime la tristesse. \u00c9motion: col\u00e8re.", "Sadness"),
    ("\u8fd9\u4e2a\u4eba\u5f88\u5f00\u5fc3. Joy.", "Happiness"),
    ("\u8fd9\u4e2a\u4eba\u5f88\u5f00\u5fc3\u3002 Joy.", "Happiness"),
    ("The face \U0001F600 shows joy.", "Happiness"),
    ("Joy\U0001F600. Fear.", "Happiness"),
    ("The person looks happy\u2026 and relaxed.", "Happiness"),
    ("The person looks happy\u2026", "Happiness"),
    ("\u0661\u0662 fear. Joy.", "Fear"),
    ("Fear\u0661. Joy.", "Happiness"),
    ("The \u039d\u039f face. Anger.", "Anger"),
    ("\u00bfHappy? S\u00ed, happy.", "Happiness"),
    ("The face shows na\u00efve joy.", "Happiness"),
    ("The person is not\u00a0happy. Sadness.", "Sadness"),
    # labels given as ids
    ("The person looks happy.", "0"),
    ("The person looks sad and shows sadness.", 1),
    ("The person shows surprise.", "2"),
    ("The person shows anger.", 3),
]


def long_text(rng, n_sent):
    out = []
    for _ in range(n_sent):
        c = rng.randrange(7)
        out.append(rng.choice(CUES[c]))
    return " ".join(out)


def emotion_cases(rng):
    cases = []
    # realistic GPT-4V style descriptions, 16 per class
    for c in range(7):
        for k in range(16):
            pred = realistic_prediction(c if rng.random() < 0.75 else rng.randrange(7), rng)
            v = rng.random()
            if v < 0.1:
                pred = pred.rstrip(".")          # no final period
            elif v < 0.15:
                pred = pred.replace(". ", ".\n")  # one sentence per line
            elif v < 0.2:
                pred = "The person does not look angry. " + pred
            elif v < 0.25:
                pred = pred.upper()
            cases.append((pred, NAMES[c], reference_for(c, rng)))
    for pred, label in ADVERSARIAL_EMOTION:
        c = emotion_target(label)
        cases.append((pred, label, reference_for(c, rng)))
    # long texts
    for k in range(4):
        c = rng.randrange(7)
        pred = realistic_prediction(c, rng) + " " + long_text(rng, 30 + 20 * k)
        cases.append((pred, NAMES[c], reference_for(c, rng) + " " + long_text(rng, 10)))
    # one sentence of ~700 words (no period): the package needs the raised recursion limit
    words = LONG_CUES.replace(".", "").split()
    big = " ".join(rng.choice(words) for _ in range(700))
    cases.append(("Joy " + big + ".", "Happiness", "Joy " + " ".join(rng.choice(words)
                                                                     for _ in range(400))))
    # ROUGE-specific shapes (emotion rule exercised too)
    rouge_cases = [
        ("Joy. . Joy", "Happiness", "Joy. Joy. Joy"),
        ("joy joy joy joy.", "Happiness", "Joy joy."),
        ("The face shows joy", "Happiness", "the face shows joy"),
        ("The face shows joy.", "Happiness", "The face shows joy."),
        ("The  face\tshows\njoy.", "Happiness", "The face shows joy."),
        ("The face shows joy.", "Happiness", "..."),
        ("The face shows joy.", "Happiness", ""),
        ("a b c d e f. g h.", "Neutral", "b d f h. a c e g."),
        ("a a a b b b. c.", "Neutral", "b a b a. c c."),
        ("x y z. x z y. y x z.", "Neutral", "z y x. y z x."),
        ("Happy,  smiling, joyful.", "Happiness", "Happy, smiling, joyful, content."),
        ("Happy.\u00a0Smiling.", "Happiness", "Happy. Smiling."),
        ("Happy\u3000smiling.", "Happiness", "Happy smiling."),
        ("Happy\u200bsmiling.", "Happiness", "Happy smiling."),
        ("caf\u00e9 joy. \U0001F600 smile.", "Happiness", "caf\u00e9 smile. joy \U0001F600."),
        ("The face is calm.", "Neutral", "The face is calm. The face is calm. The face is calm."),
    ]
    cases.extend(rouge_cases)
    return cases


AU_NAMES = {1: "Inner Brow Raiser", 2: "Outer Brow Raiser", 4: "Brow Lowerer",
            5: "Upper Lid Raiser", 6: "Cheek Raiser", 7: "Lid Tightener", 9: "Nose Wrinkler",
            10: "Upper Lip Raiser", 12: "Lip Corner Puller", 14: "Dimpler",
            15: "Lip Corner Depressor", 17: "Chin Raiser", 20: "Lip Stretcher",
            23: "Lip Tightener", 24: "Lip Pressor", 25: "Lips Part", 26: "Jaw Drop",
            27: "Mouth Stretch", 43: "Eyes Closed"}
# AU17 never occurs, so EmoLA's single-class exclusion (a 1x1 confusion matrix) is exercised.
AU_POOL = sorted(a for a in AU_NAMES if a != 17)


def au_sentence(aus, rng, style):
    if style == 0:
        items = [f"AU{a} ({AU_NAMES[a]})" for a in aus]
        return "The facial action units present are " + ", ".join(items) + "."
    if style == 1:
        s = "In this image, "
        s += " ".join(f"the {AU_NAMES[a].lower()} is active (AU{a})." for a in aus)
        return s + " These action units together suggest an emotional response."
    if style == 2:
        return " ".join(f"AU{a}: {AU_NAMES[a]}." for a in aus)
    return ("The person shows " + ", ".join(f"AU{a}" for a in aus[:-1]) +
            (" and " if len(aus) > 1 else "") + f"AU{aus[-1]}. The expression is mild.")


def au_cases(rng):
    cases = []
    for k in range(48):
        n = rng.randint(1, 5)
        truth = sorted(rng.sample(AU_POOL, n))
        pred = list(truth)
        r = rng.random()
        if r < 0.4:  # drop one, add one
            if len(pred) > 1:
                pred.remove(rng.choice(pred))
            extra = rng.choice(AU_POOL)
            if extra not in pred:
                pred.append(extra)
        elif r < 0.55:
            pred = sorted(rng.sample(AU_POOL, rng.randint(1, 4)))
        pred_text = au_sentence(pred, rng, rng.randrange(4))
        ref_text = au_sentence(truth, rng, rng.randrange(4))
        cases.append((pred_text, ", ".join(str(a) for a in truth), ref_text))
    adversarial = [
        ("AU12 and AU6 are present.", "6, 12"),
        ("AU 12 and AU 6 are present.", "6, 12"),
        ("au12 and Au6 are present.", "6, 12"),
        ("AU01, AU02 and AU04 are active.", "1, 2, 4"),
        ("AU1, AU2 and AU4 are active.", "1, 2, 4"),
        ("AU12AU6AU25", "6, 12, 25"),
        ("AU12, AU12, AU12 (Lip Corner Puller).", "12"),
        ("AU120 and AU1200 and AU99999999999999999999.", "12"),
        ("AU4+AU9+AU15 suggest disgust.", "4, 9, 15"),
        ("AUs 4, 9 and 15.", "4, 9, 15"),
        ("AU\u0661\u0662 and AU1\u0662 and AU\uff11\uff12.", "12"),
        ("AU6\u00a0AU12.", "6, 12"),
        ("No action units are visible.", ""),
        ("", "4"),
        ("...", "4"),
        ("   ", "4"),
        ("AU43 (Eyes Closed) and AU26 (Jaw Drop).", "26, 43"),
        ("AU5, AU7, AU20, AU27 are present.", "5, 7, 20, 27"),
        ("AU10AU16AU24.", "10, 16, 24"),
        ("The AU25 and AU26 and AU1 and AU2.", "1, 2, 25, 26"),
        ("XAU4Y and AU_6 and AU-9.", "4"),
        ("AU9, AU14, AU15, AU16, AU18, AU23.", "9, 14, 15, 16, 18, 23"),
        ("The expression involves AU1 (Inner Brow Raiser), AU4 (Brow Lowerer) and AU15 "
         "(Lip Corner Depressor), consistent with sadness.", "1, 4, 15"),
        ("The expression involves AU6 and AU12, consistent with happiness.\nAU25 too", "6, 12"),
    ]
    for pred, label in adversarial:
        cases.append((pred, label, "The facial action units present are AU6 (Cheek Raiser), "
                      "AU12 (Lip Corner Puller) and AU25 (Lips Part)."))
    return cases


def main():
    rng = random.Random(1234)
    os.makedirs(OUT, exist_ok=True)

    # ---- emotion ----
    ecases = emotion_cases(rng)
    preds, targets, rouges = [], [], []
    with open(os.path.join(OUT, "emotion_cases.jsonl"), "w", encoding="utf-8") as f:
        for i, (pred, label, ref) in enumerate(ecases):
            c = description2emotion(pred)
            t = emotion_target(label)
            rg = cal_rouge(ref, pred)
            preds.append(c)
            targets.append(t)
            if rg is not None:
                rouges.append(rg["f"])
            f.write(json.dumps({"id": i, "prediction": pred, "label": label, "label_class": t,
                                "reference": ref, "expected_class": c, "rouge": rg},
                               ensure_ascii=False) + "\n")
    preds, targets = np.array(preds), np.array(targets)
    acc = (preds == targets).sum() / targets.shape[0]  # eval(): emotion acc
    cm = [[int(((targets == t) & (preds == p)).sum()) for p in range(7)] for t in range(7)]
    unparsed = [int(((targets == t) & (preds == -1)).sum()) for t in range(7)]
    recall = []
    for t in range(7):
        n = int((targets == t).sum())
        recall.append(cm[t][t] / n if n else None)
    present = [r for r in recall if r is not None]
    uar = float(np.mean(present))
    rouge_mean = float(np.array(rouges).mean())
    emo = {"n": len(ecases), "accuracy": float(acc), "uar": uar, "class_recall": recall,
           "confusion": cm, "unparsed": unparsed, "n_rouge": len(rouges),
           "rouge_l_mean": rouge_mean, "s_re": float(acc) * 100, "s_ge": rouge_mean * 100,
           "rege": float(acc) * 100 + rouge_mean * 100}

    # ---- AU ----
    acases = au_cases(rng)
    all_pred = {k: [] for k in AU_MAPS}
    all_tgt = {k: [] for k in AU_MAPS}
    arouges = []
    with open(os.path.join(OUT, "au_cases.jsonl"), "w", encoding="utf-8") as f:
        for i, (pred, label, ref) in enumerate(acases):
            for k, m in AU_MAPS.items():
                all_pred[k].append(au2labels(pred, m))
                all_tgt[k].append(auint2labels(label, m))
            rg = cal_rouge(ref, pred)
            if rg is not None:
                arouges.append(rg["f"])
            f.write(json.dumps({"id": i, "prediction": pred, "label": label, "reference": ref,
                                "aus_found": aus_found(pred),
                                "faba_pred": all_pred["FABA"][-1],
                                "faba_target": all_tgt["FABA"][-1], "rouge": rg},
                               ensure_ascii=False) + "\n")
    au = {"n": len(acases)}
    for k in AU_MAPS:
        outs, tgts = np.array(all_pred[k]), np.array(all_tgt[k])
        idx = {str(a): i for i, a in enumerate(AU_MAPS[k])}
        f1s, accs, per = [], [], []
        for a in SELECT_AUS[k]:
            j = idx[str(a)]
            try:
                cm_au = confusion_matrix(tgts[:, j], outs[:, j])
                acc_a, f1 = get_acc_f1(cm_au)
                f1s.append(f1)
                accs.append(acc_a)
                per.append({"au": a, "included": True, "f1": f1, "acc": acc_a})
            except IndexError:
                per.append({"au": a, "included": False, "f1": None, "acc": None})
        au[k] = {"aus": SELECT_AUS[k], "per_au": per,
                 "f1_mean": float(np.mean(np.array(f1s))) if f1s else None,
                 "acc_mean": float(np.mean(np.array(accs))) if accs else None}
    rm = float(np.array(arouges).mean())
    au.update({"n_rouge": len(arouges), "rouge_l_mean": rm, "s_re": au["FABA"]["f1_mean"] * 100,
               "s_ge": rm * 100, "rege": au["FABA"]["f1_mean"] * 100 + rm * 100})

    with open(os.path.join(OUT, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"emotion": emo, "au": au}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(ecases)} emotion cases (acc {acc:.4f}, uar {uar:.4f}, "
          f"{sum(1 for p in preds if p < 0)} unparsed, {len(ecases) - len(rouges)} without "
          f"rouge), {len(acases)} AU cases (FABA F1 {au['FABA']['f1_mean']:.4f}, "
          f"excluded {[p['au'] for p in au['FABA']['per_au'] if not p['included']]})")


if __name__ == "__main__":
    main()
