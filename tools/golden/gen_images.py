#!/usr/bin/env python3
"""tools/golden/gen_images.py - image decoding and CLIP preprocessing fixtures.

Writes tests/golden/images/, read by tests/test_golden_preprocess.c (and by the decoder
tests in tests/test_image.c):

  <input>.jpg / .png   inputs derived with PIL from photographs shipped with scikit-image
                       (skimage.data: astronaut (a face), coffee, chelsea, rocket) in every
                       decoder path: baseline JPEG q90, progressive JPEG, greyscale JPEG,
                       CMYK JPEG (PIL writes Adobe-inverted CMYK), RGB PNG, RGBA PNG,
                       palette PNG with tRNS, 16-bit RGB PNG (written by hand: PIL cannot).
  exp_<case>.png       the expected pre-normalize image of one preprocessing case: the u8
                       values round((x * std + mean) * 255) recovered from the float32
                       pixel_values of transformers' CLIPImageProcessor (checked here to be
                       exact: renormalizing them gives back the same float32 bits), stored as
                       an RGB PNG (lossless, S x S) to keep the fixtures small.
  manifest.txt         one line per case: "case input S pad expected" (pad 1 = LLaVA
                       expand2square first), and one line per input:
                       "decode input width height fnv1a64" - the FNV-1a 64 hash of the RGB
                       bytes of Image.open(path).convert('RGB'), the way LLaVA opens images
                       (also for the fuzz seeds below, which cover grey+alpha, 1-bit, 16-bit
                       grey, interlaced PNG; paths relative to tests/golden/images/).
  normalize_lut.f32    float32 [3][256]: CLIPImageProcessor's rescale + normalize of every
                       u8 value per channel (its exact float32 output, little-endian).

It also writes the fuzz seeds tests/fuzz/corpus/image/ (tiny crops of the same photographs
in every decoder path, for tests/fuzz/fuzz_image.c).

Preprocessing reference (LLaVA): image = Image.open(path).convert('RGB'); optionally
expand2square(image, tuple(int(x * 255) for x in processor.image_mean)); then
CLIPImageProcessor(size={"shortest_edge": S}, crop_size={"height": S, "width": S})
(defaults: bicubic resize, center crop, rescale 1/255, OpenAI CLIP mean/std).

Run:  pip install pillow==11.0.0 numpy==2.1.3 scikit-image transformers==4.46.3
      python3 tools/golden/gen_images.py
"""
import os
import struct
import zlib

import numpy as np
from PIL import Image
from skimage import data as skdata
from transformers import CLIPImageProcessor

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "images")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def png_rgb(path, arr, interlace=False):
    """Writes an H x W x 3 uint8 or uint16 array as an RGB PNG, optionally Adam7-interlaced
    (PIL can write neither 16-bit RGB nor interlaced PNGs)."""
    h, w, _ = arr.shape
    depth = 16 if arr.dtype == np.uint16 else 8

    def chunk(kind, body):
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    def rows(a):  # filter type 0 (None) on every row
        return b"".join(b"\x00" + r.astype(">u2" if depth == 16 else "u1").tobytes() for r in a)

    if interlace:  # Adam7 passes: (x0, y0, dx, dy)
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                  (1, 0, 2, 2), (0, 1, 1, 2)]
        raw = b"".join(rows(arr[y0::dy, x0::dx]) for x0, y0, dx, dy in passes
                       if arr[y0::dy, x0::dx].size)
    else:
        raw = rows(arr)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, int(interlace))))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def make_inputs():
    astro = Image.fromarray(skdata.astronaut())   # 512 x 512, a face
    coffee = Image.fromarray(skdata.coffee())     # 600 x 400
    chelsea = Image.fromarray(skdata.chelsea())   # 451 x 300
    rocket = Image.fromarray(skdata.rocket())     # 640 x 427
    p = lambda name: os.path.join(OUT, name)      # noqa: E731

    astro.save(p("astronaut_q90.jpg"), quality=90)
    coffee.resize((800, 600), Image.LANCZOS).save(p("coffee_800x600_q90.jpg"), quality=90)
    rocket.crop((180, 0, 460, 427)).save(p("rocket_portrait_prog.jpg"), quality=90,
                                         progressive=True)
    chelsea.convert("L").save(p("chelsea_grey.jpg"), quality=90)
    coffee.resize((300, 200), Image.LANCZOS).convert("CMYK").save(p("coffee_cmyk.jpg"),
                                                                   quality=90)
    astro.crop((170, 30, 290, 190)).resize((60, 80), Image.LANCZOS).save(
        p("astronaut_face_60x80.jpg"), quality=90, subsampling=0)
    chelsea.resize((240, 160), Image.LANCZOS).save(p("chelsea_rgb.png"), optimize=True)
    face = np.array(astro.crop((140, 20, 340, 270)))              # 200 x 250
    alpha = np.tile(np.linspace(0, 255, face.shape[1]).astype(np.uint8), (face.shape[0], 1))
    alpha[:20, :] = 0                                             # fully transparent band
    Image.fromarray(np.dstack([face, alpha]), "RGBA").save(p("astronaut_rgba.png"),
                                                           optimize=True)
    pal = coffee.resize((210, 140), Image.LANCZOS).quantize(64)
    pal.save(p("coffee_palette.png"), transparency=bytes([0, 128, 255] + [255] * 61),
             optimize=True)
    r16 = np.array(rocket.resize((128, 192), Image.LANCZOS)).astype(np.uint16)
    r16 = r16 * 257 + (np.arange(128, dtype=np.uint16) % 7)[None, :, None]  # low byte != high
    png_rgb(p("rocket_rgb16.png"), r16.astype(np.uint16))


def make_fuzz_seeds():
    d = os.path.join(OUT, "..", "..", "fuzz", "corpus", "image")
    os.makedirs(d, exist_ok=True)
    im = Image.fromarray(skdata.astronaut()).crop((180, 60, 260, 150)).resize((20, 14))
    im.save(os.path.join(d, "rgb.jpg"), quality=75)
    im.save(os.path.join(d, "rgb_444.jpg"), quality=75, subsampling=0)
    im.save(os.path.join(d, "progressive.jpg"), quality=75, progressive=True)
    im.convert("L").save(os.path.join(d, "grey.jpg"), quality=75)
    im.convert("CMYK").save(os.path.join(d, "cmyk.jpg"), quality=75)
    im.save(os.path.join(d, "rgb.png"))
    png_rgb(os.path.join(d, "interlaced.png"), np.array(im), interlace=True)
    im.convert("RGBA").save(os.path.join(d, "rgba.png"))
    im.convert("LA").save(os.path.join(d, "grey_alpha.png"))
    im.convert("1").save(os.path.join(d, "grey1.png"))
    pal = im.quantize(16)
    pal.save(os.path.join(d, "palette_trns.png"), transparency=bytes([0, 100] + [255] * 14))
    png_rgb(os.path.join(d, "rgb16.png"), np.array(im).astype(np.uint16) * 257 + 3)
    Image.fromarray((np.array(im.convert("L")).astype(np.uint16) * 3), "I;16").save(
        os.path.join(d, "grey16.png"))
    return sorted(os.path.join("..", "..", "fuzz", "corpus", "image", n) for n in os.listdir(d))


CASES = [  # (case, input, S, pad)
    ("astronaut_q90_336", "astronaut_q90.jpg", 336, 0),
    ("astronaut_q90_224", "astronaut_q90.jpg", 224, 0),
    ("coffee_800x600_336", "coffee_800x600_q90.jpg", 336, 0),
    ("rocket_portrait_prog_336", "rocket_portrait_prog.jpg", 336, 0),
    ("rocket_portrait_prog_pad_336", "rocket_portrait_prog.jpg", 336, 1),
    ("chelsea_grey_336", "chelsea_grey.jpg", 336, 0),
    ("coffee_cmyk_336", "coffee_cmyk.jpg", 336, 0),
    ("astronaut_face_60x80_336", "astronaut_face_60x80.jpg", 336, 0),
    ("astronaut_face_60x80_pad_224", "astronaut_face_60x80.jpg", 224, 1),
    ("chelsea_rgb_336", "chelsea_rgb.png", 336, 0),
    ("astronaut_rgba_336", "astronaut_rgba.png", 336, 0),
    ("coffee_palette_336", "coffee_palette.png", 336, 0),
    ("rocket_rgb16_336", "rocket_rgb16.png", 336, 0),
]


def expand2square(pil_img, background_color):  # LLaVA's, verbatim semantics
    width, height = pil_img.size
    if width == height:
        return pil_img
    if width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    result = Image.new(pil_img.mode, (height, height), background_color)
    result.paste(pil_img, ((height - width) // 2, 0))
    return result


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for x in np.frombuffer(b, np.uint8).tolist():
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    os.makedirs(OUT, exist_ok=True)
    make_inputs()
    seeds = make_fuzz_seeds()
    lines = []
    for name in sorted({c[1] for c in CASES}) + seeds:
        im = Image.open(os.path.join(OUT, name)).convert("RGB")
        lines.append("decode %s %d %d %016x" % (name, im.width, im.height,
                                               fnv1a64(im.tobytes())))
    for case, name, s, pad in CASES:
        proc = CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
        im = Image.open(os.path.join(OUT, name)).convert("RGB")
        if pad:
            im = expand2square(im, tuple(int(x * 255) for x in proc.image_mean))
        x = proc.preprocess(im, return_tensors="np")["pixel_values"][0]   # [3, S, S] f32
        assert x.dtype == np.float32 and x.shape == (3, s, s)
        v = (x.astype(np.float64) * STD[:, None, None] + MEAN[:, None, None]) * 255.0
        u8 = np.round(v)
        assert np.abs(v - u8).max() < 1e-3, "pre-normalize values are not integers"
        u8 = u8.astype(np.uint8)
        back = proc.preprocess(Image.fromarray(u8.transpose(1, 2, 0)), do_resize=False,
                               do_center_crop=False, return_tensors="np")["pixel_values"][0]
        assert np.array_equal(back, x), "renormalizing the u8 image changes float32 bits"
        Image.fromarray(u8.transpose(1, 2, 0)).save(os.path.join(OUT, "exp_%s.png" % case),
                                                    optimize=True)
        lines.append("case %s %s %d %d exp_%s.png" % (case, name, s, pad, case))
    proc = CLIPImageProcessor()
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (2, 1, 3))
    lut = proc.preprocess(Image.fromarray(ramp), do_resize=False, do_center_crop=False,
                          input_data_format="channels_last",
                          return_tensors="np")["pixel_values"][0]            # [3, 2, 256]
    lut[:, 0, :].astype("<f4").tofile(os.path.join(OUT, "normalize_lut.f32"))
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("wrote %d files, %.2f MB" % (len(os.listdir(OUT)), total / 1e6))


if __name__ == "__main__":
    main()
